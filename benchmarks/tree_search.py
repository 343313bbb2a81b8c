"""Does PRM-guided tree search beat the greedy policy? Side by side on the same items.

    python benchmarks/tree_search.py --out results/tree/tree_search.json            # 100 test items per cell
    python benchmarks/tree_search.py --quick --out results/tree/quick.json

For every env x initial state, the same items run through the benchmark harness
(:func:`agents.evaluate.evaluate`, so every run also leaves its ``.json`` / ``.episodes.jsonl``
beside ``--out``) with:

* ``greedy``: the MLLM policy alone (``--agent mllm``), the baseline;
* ``tree k=K``: :class:`agents.tree_search.TreeSearchAgent` with K candidates per step, stopping
  with ``Finish`` when the PRM predicts no candidate improves the mask (``--agent tree``);
* ``tree k=K, no PRM stop``: the same, clicking until the policy itself says ``Finish`` or the
  budget ends (what the stopping rule is worth).

Reported per row: mIoU after each click, final mIoU, clicks used, ``Finish`` rate, seconds per
step, and for the tree rows the final-IoU difference from greedy with a paired-bootstrap 95%
interval (:func:`benchmarks.paired_bootstrap.paired_bootstrap`) plus the search's own counts
(PRM stops, greedy chosen). One JSON (``--out``) and a Markdown table on stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):  # `python benchmarks/tree_search.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cliargs import arg, parse_dataclass  # noqa: E402

QUICK = {"episodes": 4}


@dataclass(kw_only=True)
class TreeBenchArgs:
    """PRM-guided tree search against the greedy policy, same items, same harness."""

    envs: list[str] = arg(["SegAgent-Shapes-v0", "SegAgent-ThinShapes-v0"], "env ids (each with its default segmenter)")
    states: list[str] = arg(["empty", "points"], "initial states")
    k: list[int] = arg([4], "candidates per step (one tree row each)")
    no_stop: bool = arg(False, "also run each k without the PRM stopping rule")
    model: Optional[str] = arg(None, "a local policy checkpoint (default: the shipped tiny model)")
    prm_model: Optional[str] = arg(None, "a separate reward-model checkpoint that scores the candidates (default: the "
                                   "policy judges its own masks)")
    prm_readout: str = arg("greedy", "how the PRM's IoU line is read: greedy (the stated number), median or mean "
                                     "(agents/prm.py)")
    proposals: str = arg("sample", "how the tree's candidates are drawn: sample (at --temperature) or beam (the k "
                                   "most likely actions)")
    tie_margin: float = arg(0.0, "take the most likely candidate scoring within this of the best (IoU fraction)")
    temperature: float = arg(1.0, "proposal sampling temperature")
    split: str = arg("test", "dataset split")
    episodes: int = arg(100, "items per cell (the first N of the split)")
    max_clicks: int = arg(5, "clicks per episode")
    seed: int = arg(0, "episode k resets with seed + k; tree proposals are seeded from it")
    quick: bool = arg(False, "4 items per cell (a smoke run)")
    out: str = arg("results/tree/tree_search.json", "summary JSON; the runs' files go beside it")
    progress: bool = arg(True, "no progress bars")

    def __post_init__(self) -> None:
        if self.quick:
            for key, value in QUICK.items():
                setattr(self, key, value)
        if self.episodes < 1 or self.max_clicks < 1 or any(k < 1 for k in self.k):
            raise ValueError("--episodes, --max-clicks and every --k must be >= 1")


def _row(name: str, summary: dict) -> dict:
    return {
        "agent": name,
        "miou_per_click": summary["miou_per_click"],
        "miou": summary["miou"],
        "clicks_used": summary["clicks_used"],
        "finish_rate": summary["finish_rate"],
        "invalid_step_rate": summary["invalid_step_rate"],
        "seconds_per_click": summary["seconds_per_click"],
        "agent_stats": summary.get("agent_stats"),
        "run": summary["_path"],
    }


def run_cell(args: TreeBenchArgs, env: str, state: str, out_dir: Path) -> list[dict]:
    """Greedy, then each tree variant, on the same items; rows with paired differences from greedy."""
    from agents.evaluate import EvalArgs, evaluate
    from benchmarks.paired_bootstrap import final_ious, paired_bootstrap

    tag = f"{env.removeprefix('SegAgent-').removesuffix('-v0')}_{state}"
    common = dict(env=env, split=args.split, episodes=args.episodes, max_clicks=args.max_clicks, seed=args.seed,
                  initial_state=state, model=args.model, progress=args.progress)
    variants: list[tuple[str, dict]] = [("greedy", {"agent": "mllm"})]
    for k in args.k:
        tree = {"agent": "tree", "search_k": k, "temperature": args.temperature, "prm_model": args.prm_model,
                "prm_readout": args.prm_readout, "search_proposals": args.proposals,
                "search_tie_margin": args.tie_margin}
        variants.append((f"tree k={k}", tree))
        if args.no_stop:
            variants.append((f"tree k={k}, no PRM stop", {**tree, "search_stop": False}))
    rows = []
    base_ious = None
    for name, extra in variants:
        path = out_dir / f"{tag}_{name.replace(' ', '').replace(',', '_').replace('=', '')}.json"
        summary = evaluate(EvalArgs(out=str(path), **common, **extra))
        summary["_path"] = str(path)
        row = _row(name, summary)
        ious = final_ious(path)
        if base_ious is None:
            base_ious = ious
        else:
            shared = sorted(set(ious) & set(base_ious))
            row["vs_greedy"] = paired_bootstrap([base_ious[e][1] for e in shared], [ious[e][1] for e in shared])
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    lines = ["| env, start | agent | mIoU@1 .. @N | final mIoU | vs greedy (95% CI) | clicks used | Finish rate | PRM stops | s/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cell, rows in results["cells"].items():
        for r in rows:
            vs = r.get("vs_greedy")
            diff = "" if vs is None else f"{vs['diff']:+.3f} [{vs['ci_low']:+.3f}, {vs['ci_high']:+.3f}]"
            stats = r.get("agent_stats") or {}
            lines.append(f"| {cell} | {r['agent']} | {' '.join(f'{v:.3f}' for v in r['miou_per_click'])} | {r['miou']:.3f} | "
                         f"{diff} | {r['clicks_used']:.2f} | {r['finish_rate']:.2f} | {stats.get('stopped_by_prm', '')} | "
                         f"{r['seconds_per_click']:.3f} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> dict:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_dataclass(TreeBenchArgs, argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args).copy(), "cells": {}}
    for env in args.envs:
        for state in args.states:
            results["cells"][f"{env}, {state}"] = run_cell(args, env, state, out.parent)
            out.write_text(json.dumps(results, indent=1, default=float))  # partial results survive a crash
    table = markdown(results)
    results["table"] = table
    out.write_text(json.dumps(results, indent=1, default=float))
    print(table)
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
