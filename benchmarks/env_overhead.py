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

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym
import numpy as np

import segenv  # noqa: F401
from agents.oracle import OracleAgent
from segenv.rollout import STOP


@dataclass
class OverheadArgs:
    episodes: int = 10
    max_clicks: int = 5
    image_size: int = 512
    sam: list[str] = field(default_factory=list)
    hf: list[str] = field(default_factory=list)
    out: str = "results/env_overhead.json"
    seed: int = 0
    threads: int = 0


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
    env = gym.make("SegAgent-Shapes-v0", segmenter=segmenter, image_size=args.image_size, max_clicks=args.max_clicks)
    base = env.unwrapped
    agent = OracleAgent()
    seg_times, env_times, encoder_per_episode = [], [], []
    for k in range(args.episodes + 1):  # episode 0 warms up and is not counted
        before = getattr(segmenter, "encoder_calls", None)
        obs, info = env.reset(seed=args.seed + k, options={"index": k})
        agent.reset(obs, info)
        done = False
        while not done:
            action = agent.act(obs, info)
            if action is STOP:
                break
            t0 = time.perf_counter()
            obs, _, term, trunc, info = env.step(action)
            wall = time.perf_counter() - t0
            done = term or trunc
            if k:
                seg_times.append(base.last_segmenter_seconds)
                env_times.append(wall - base.last_segmenter_seconds)
        if k and before is not None:
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


def parse(argv: Optional[Sequence[str]]) -> OverheadArgs:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = OverheadArgs()
    p.add_argument("--episodes", type=int, default=d.episodes)
    p.add_argument("--max-clicks", type=int, default=d.max_clicks)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--sam", action="append", default=[], help="a segment-anything .pth (repeatable)")
    p.add_argument("--hf", action="append", default=[], help="a transformers SAM folder (repeatable)")
    p.add_argument("--out", default=d.out)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (0: torch's default)")
    return OverheadArgs(**vars(p.parse_args(argv)))


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse(argv)
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
