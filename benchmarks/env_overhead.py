"""The env's own cost per step beside the segmenter's decoder call, side by side in one run.

    python benchmarks/env_overhead.py --episodes 10 --image-size 512

For each backend (GrabCut, a tiny random SAM built in memory, and any ``--sam PATH`` /
``--hf PATH`` checkpoint) the oracle runs ``--episodes`` episodes of ``--max-clicks`` clicks on
``SegAgent-Shapes-v0``; per step we split the wall time of ``env.step`` into the segmenter call
(``last_segmenter_seconds``) and everything else the env does (prompt bookkeeping, IoU at the
original resolution, mask resize, overlay, observation copies). Target: env overhead <= 5% of a
SAM decoder call at S=512. Also checks that the image encoder runs once per episode.
Writes JSON (``--out``) and prints a table.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import segenv  # noqa: E402,F401
from agents.cliargs import arg, parse_dataclass  # noqa: E402
from agents.oracle import OracleAgent  # noqa: E402
from segenv.actions import KIND_FINISH, KIND_NO_OBJECT  # noqa: E402
from segenv.rollout import run_episode  # noqa: E402


@dataclass(kw_only=True)
class OverheadArgs:
    """The env's own cost per step beside the segmenter's decoder call, side by side in one run."""

    episodes: int = arg(10, "episodes per backend (one more warms up and is not counted)")
    max_clicks: int = arg(5, "clicks per episode")
    image_size: int = arg(512, "observation size S")
    sam: list[str] = arg([], "segment-anything .pth files to time too")
    hf: list[str] = arg([], "transformers SAM folders to time too")
    out: str = arg("results/env_overhead.json", "result JSON")
    seed: int = arg(0, "episode k resets with seed + k")
    threads: int = arg(0, "torch threads (0: torch's default)")


def backends(args: OverheadArgs) -> list[tuple[str, object]]:
    from segenv.segmenters import make_segmenter

    found: list[tuple[str, object]] = [("grabcut", make_segmenter("grabcut"))]
    try:
        from segenv.segmenters.sam import SamSegmenter
        from segenv.segmenters.tiny import tiny_sam

        found.append(("sam-tiny", SamSegmenter(model=tiny_sam(seed=0))))
    except ImportError as exc:  # torch / segment-anything not installed
        print(f"skipping the tiny SAM: {exc}")
    found += [(f"sam:{p}", make_segmenter(f"sam:{p}")) for p in args.sam]
    found += [(f"hf:{p}", make_segmenter(f"hf:{p}")) for p in args.hf]
    return found


def measure(name: str, segmenter, args: OverheadArgs) -> dict:
    """The oracle through the rollout harness; each step's wall time split by the harness into the
    segmenter call and the env's own time (:class:`segenv.rollout.StepRecord`)."""
    env = gym.make("SegAgent-Shapes-v0", segmenter=segmenter, image_size=args.image_size, max_clicks=args.max_clicks)
    seg_times, env_times, encoder_per_episode = [], [], []
    for k in range(args.episodes + 1):  # episode 0 warms up and is not counted
        before = getattr(segmenter, "encoder_calls", None)
        traj = run_episode(OracleAgent(), env, seed=args.seed + k, index=k)
        if not k:
            continue
        clicks = [s for s in traj.steps if s.action is not None and int(s.action[0]) not in (KIND_FINISH, KIND_NO_OBJECT)]
        seg_times += [s.segmenter_seconds for s in clicks]
        env_times += [s.env_seconds for s in clicks]
        if before is not None:
            encoder_per_episode.append(segmenter.encoder_calls - before)
    env.close()
    seg, own = float(np.mean(seg_times)), float(np.mean(env_times))
    return {
        "backend": name,
        "steps": len(seg_times),
        "segmenter_ms_per_step": 1e3 * seg,
        "env_overhead_ms_per_step": 1e3 * own,
        "overhead_over_segmenter": own / seg if seg else float("nan"),
        "encoder_calls_per_episode": sorted(set(encoder_per_episode)) or None,
    }


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_dataclass(OverheadArgs, argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = [measure(name, seg, args) for name, seg in backends(args)]
    print(f"{'backend':<14} {'steps':>5} {'segmenter ms':>13} {'env ms':>8} {'env/segmenter':>14} {'encoder/episode':>16}")
    for r in rows:
        print(
            f"{r['backend']:<14} {r['steps']:>5} {r['segmenter_ms_per_step']:>13.2f} {r['env_overhead_ms_per_step']:>8.3f}"
            f" {100 * r['overhead_over_segmenter']:>13.1f}% {str(r['encoder_calls_per_episode']):>16}"
        )
    result = {"args": asdict(args), "results": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
