"""Roll any agent out on any env id and report the paper's numbers.

    python benchmarks/run.py --agent oracle --env SegAgent-Shapes-v0 --episodes 100 --max-clicks 5

A thin script over :mod:`agents.evaluate`, the same as ``segagent bench`` (flags, defaults and
help come from :class:`agents.evaluate.EvalArgs`): prints a table, shows a progress bar, appends
every finished episode to ``OUT.episodes.jsonl`` as it goes (``--resume`` continues an
interrupted run without redoing those episodes), and writes ``OUT`` (JSON summary: agent, env,
split, segmenter, episodes, miou, ciou, miou_per_click, noc85, noc90, nof90, invalid_step_rate,
seconds_per_click, env_overhead_fraction, ...) with ``OUT.png`` (mIoU against clicks) and, with
``--sheet N``, a trajectory sheet of the first N episodes (``OUT.sheet.png``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evaluate import EvalArgs, RunArgs, evaluate, format_table, main, make_env, parse_args, plot_curve  # noqa: E402,F401

if __name__ == "__main__":
    main()
