"""Env steps per second of sync, async and the native batched vector env, side by side in one run.

    python benchmarks/vector_env.py --out results/vector_env.json      # JSON + PNG next to it
    python benchmarks/vector_env.py --quick --out /tmp/v.json          # smoke test (seconds)

For each ``num_envs`` in ``--num-envs`` and each mode (``sync`` and ``async`` are gymnasium's
``SyncVectorEnv`` / ``AsyncVectorEnv`` over ``gym.make(id)``, async without shared memory for the
Text observation; ``batched`` is :class:`segenv.vector.SegVectorEnv`, one segmenter call per
vector step), the same seeded random valid clicks run ``--steps`` vector steps after ``--warmup``
untimed ones. Env steps/s = ``num_envs * steps / seconds``; autoreset steps count as steps (they
run ``set_image``, the once-per-episode image encoder). The goal (issue #15): batched with 8 envs
>= 4x one env. A cProfile of batched runs (one env, and the largest ``num_envs``) splits each env
step's time into the segmenter's decoder, the image encoder at resets, and the env's own work
(overlay, mask resize, IoU, info copies, batching), so the ratio can be explained.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from agents.cliargs import arg, parse_dataclass  # noqa: E402

MODES = ("sync", "async", "batched")


@dataclass(kw_only=True)
class VectorBenchArgs:
    """Env steps/s of sync / async / batched vector envs for several num_envs, in one run."""

    env_id: str = arg("SegAgent-Shapes-v0", "registered env id")
    num_envs: tuple[int, ...] = arg((1, 2, 4, 8), "numbers of sub-envs")
    modes: list[str] = arg(list(MODES), "vector modes to time", choices=MODES)
    steps: int = arg(40, "timed vector steps per (mode, num_envs) and repeat")
    repeats: int = arg(3, "timed runs per cell, interleaved over all cells; the median is reported (a shared, noisy machine)")
    warmup: int = arg(3, "untimed vector steps first (model load, first episode)")
    image_size: Optional[int] = arg(None, "observation size S (None: the id's default)")
    max_clicks: Optional[int] = arg(None, "clicks per episode (None: the id's default)")
    threads: int = arg(1, "torch threads per process (async: per worker)")
    device: Optional[str] = arg(None, "segmenter device, e.g. cuda (None: the segmenter's default)")
    seed: int = arg(0, "reset seed and action seed")
    profile: bool = arg(True, "no cProfile breakdown of the batched mode")
    quick: bool = arg(False, "smoke test: 1 and 2 envs, 3 steps, S=32")
    out: str = arg("results/vector_env.json", "result JSON (a PNG is written next to it)")

    def __post_init__(self) -> None:
        if self.quick:
            self.num_envs, self.steps, self.warmup, self.repeats = tuple(n for n in self.num_envs if n <= 2) or (1, 2), 3, 1, 1
            self.image_size = self.image_size or 32
        if not self.num_envs or min(self.num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError("steps must be >= 1 and warmup >= 0")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")


def make_envs(mode: str, n: int, args: VectorBenchArgs):
    import gymnasium as gym

    from segenv.vector import vector_spec

    kw: dict = {k: v for k, v in (("image_size", args.image_size), ("max_clicks", args.max_clicks)) if v is not None}
    if args.device is not None:
        kw["segmenter_kwargs"] = {"device": args.device}
    if mode == "batched":
        return gym.make_vec(vector_spec(args.env_id), num_envs=n, vectorization_mode="vector_entry_point", **kw)
    vector_kwargs = {"shared_memory": False} if mode == "async" else {}
    return gym.make_vec(args.env_id, num_envs=n, vectorization_mode=mode, vector_kwargs=vector_kwargs, **kw)


def run_steps(envs, steps: int, rng: np.random.Generator) -> float:
    """Seconds for ``steps`` vector steps of random valid clicks (end component 0 in full mode)."""
    n, dim = envs.num_envs, envs.single_action_space.shape[0]
    t0 = time.perf_counter()
    for _ in range(steps):
        actions = rng.random((n, dim)).astype(np.float32)
        if dim == 4:
            actions[:, 3] = 0.0  # clicks only: the same work in every mode
        envs.step(actions)
    return time.perf_counter() - t0


def measure(mode: str, n: int, args: VectorBenchArgs) -> float:
    """Env steps/s of one run: a fresh vector env, the same seeds and actions every time."""
    envs = make_envs(mode, n, args)
    rng = np.random.default_rng(args.seed)
    envs.reset(seed=args.seed)
    run_steps(envs, args.warmup, rng)
    seconds = run_steps(envs, args.steps, rng)
    envs.close()
    return n * args.steps / seconds


# cProfile (file suffix, function name) -> the part of an env step it is. Cumulative times of
# outermost calls only (the decoder inside predict_batch, the encoder inside reset), so no part
# counts another's time.
PARTS = {
    "decoder (predict_batch)": (("segmenters/base.py", "predict_batch"),),
    "image encoder (set_image at resets)": (("", "set_image"),),
    "IoU (intersection_union)": (("segenv/metrics.py", "intersection_union"),),
    "mask resize (resize_mask)": (("segenv/render.py", "resize_mask"),),
    "image resize + blend at resets": (("segenv/render.py", "resize_image"), ("segenv/render.py", "blend")),
    "overlay (overlay_mask)": (("segenv/render.py", "overlay_mask"),),
    "info copies (_info)": (("segenv/env.py", "_info"),),
    "batching (_batch, _add_info)": (("segenv/vector.py", "_batch"), ("vector/vector_env.py", "_add_info")),
}


def profile_batched(n: int, args: VectorBenchArgs) -> dict:
    """Per env step: milliseconds in each part of :data:`PARTS`, and in total, under cProfile."""
    import cProfile
    import pstats

    envs = make_envs("batched", n, args)
    rng = np.random.default_rng(args.seed)
    envs.reset(seed=args.seed)
    run_steps(envs, args.warmup, rng)
    prof = cProfile.Profile()
    prof.enable()
    total = run_steps(envs, args.steps, rng)
    prof.disable()
    envs.close()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    per_step = 1e3 / (n * args.steps)
    parts = {}
    for part, names in PARTS.items():
        parts[part] = per_step * sum(
            v[3] for (file, _, name), v in stats.items() if any(name == fn and file.endswith(sfx) for sfx, fn in names)
        )
    parts["total"] = per_step * total
    parts["other"] = parts["total"] - sum(v for k, v in parts.items() if k != "total")
    return {"num_envs": n, "ms_per_env_step": parts}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for mode in MODES:
        pts = sorted((r["num_envs"], r["env_steps_per_s"]) for r in rows if r["mode"] == mode)
        if pts:
            ax.plot(*zip(*pts), "o-", label=mode)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["num_envs"] for r in rows}), [str(n) for n in sorted({r["num_envs"] for r in rows})])
    ax.set_xlabel("num_envs")
    ax.set_ylabel("env steps / s")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_dataclass(VectorBenchArgs, argv)
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # async workers inherit it
    try:
        return _run(args)
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def _run(args: VectorBenchArgs) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    import segenv  # noqa: F401  (registers the ids)

    cells = [(mode, n) for n in args.num_envs for mode in args.modes]
    runs: dict[tuple[str, int], list[float]] = {cell: [] for cell in cells}
    for rep in range(args.repeats):  # interleaved, so a busy spell of the machine hits every cell alike
        for mode, n in cells:
            runs[(mode, n)].append(measure(mode, n, args))
            print(f"repeat {rep}: {mode:>8} n={n:<2} {runs[(mode, n)][-1]:8.1f} env steps/s", flush=True)
    rows = [{"mode": mode, "num_envs": n, "vector_steps": args.steps, "runs": runs[(mode, n)],
             "env_steps_per_s": float(np.median(runs[(mode, n)]))} for mode, n in cells]
    single = {r["mode"]: r["env_steps_per_s"] for r in rows if r["num_envs"] == 1}
    base = single.get("sync") or single.get("batched")
    for r in rows:
        r["speedup_over_one_env"] = r["env_steps_per_s"] / base if base else None
    largest = max(args.num_envs)
    profiles = [profile_batched(n, args) for n in sorted({1, largest})] if args.profile and "batched" in args.modes else []

    print(f"\n{'num_envs':>8} " + " ".join(f"{m + ' steps/s':>15}" for m in args.modes) + f" {'batched/1 env':>14}")
    for n in args.num_envs:
        cells = {r["mode"]: r for r in rows if r["num_envs"] == n}
        ratio = cells.get("batched", {}).get("speedup_over_one_env")
        print(f"{n:>8} " + " ".join(f"{cells[m]['env_steps_per_s']:>15.1f}" for m in args.modes)
              + (f" {ratio:>13.2f}x" if ratio else ""))
    for p in profiles:
        print(f"\nbatched, {p['num_envs']} envs, ms per env step (cProfile):")
        for part, ms in p["ms_per_env_step"].items():
            print(f"  {part:<38} {ms:7.2f}")
    ratio = next((r["speedup_over_one_env"] for r in rows if r["mode"] == "batched" and r["num_envs"] == largest), None)
    result = {"args": asdict(args), "one_env_steps_per_s": base, f"batched_{largest}_over_one_env": ratio,
              "results": rows, "profile": profiles}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(rows, out.with_suffix(".png"), f"{args.env_id}, S={args.image_size or 'default'}, {args.threads} thread(s)")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
