"""Click segmenters side by side under the oracle: quality, stability and speed in one run.

    python benchmarks/segmenter_quality.py                                   # RITM protocol, 100 val items
    python benchmarks/segmenter_quality.py --max-clicks 7 --target-iou 0     # fixed 7 clicks, no early stop
    python benchmarks/segmenter_quality.py --segmenters grabcut --items 40 --out results/grabcut.json

For each segmenter (``clicknet``, ``grabcut``, ``sam-tiny`` = a random-weight tiny SAM, or any
spec :func:`segenv.segmenters.make_segmenter` takes) and each dataset (``shapes``,
``thin_shapes`` val splits), the distance-transform oracle (paper Alg. 3) clicks through the
rollout harness. The default is RITM's protocol: empty start, up to 20 clicks, stop at IoU 0.90.

Reported per (segmenter, dataset): NoC@85 / NoC@90 / NoF@90, mIoU after each click, the
fraction of steps whose IoU *falls* by more than 0.1 and by more than 0.3 (a corrective click
must never wipe a mask), ms per segmenter call; and, per segmenter, env steps/s for ONE env at
``image_size=256`` (random clicks, 7-click episodes, resets included and excluded), measured on
the same machine in the same run, so the ratios between segmenters hold even on a noisy box.
Writes a JSON (``--out``) and a PNG of mIoU against clicks beside it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

if __package__ in (None, ""):  # `python benchmarks/segmenter_quality.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from agents.cliargs import arg  # noqa: E402


@dataclass
class QualityArgs:
    """Click segmenters side by side under the oracle: quality, stability and speed in one run."""

    segmenters: list[str] = arg(["clicknet", "grabcut", "sam-tiny"], "segmenter specs; sam-tiny = a random-weight tiny SAM")
    datasets: list[str] = arg(["shapes", "thin_shapes"], "procedural datasets")
    split: str = arg("val", "dataset split")
    items: int = arg(100, "items per dataset")
    max_clicks: int = arg(20, "clicks per episode (RITM: 20)")
    target_iou: float = arg(0.9, "stop an episode at this IoU; 0 = never (every episode runs max_clicks)")
    speed_steps: int = arg(140, "env steps timed per segmenter for steps/s")
    threads: int = arg(1, "torch threads")
    seed: int = arg(0, "seed of the oracle, the random speed clicks and sam-tiny's weights")
    out: str = arg("results/segmenter_quality.json", "result JSON (a PNG is written beside it)")


def parse_args(argv: Optional[Sequence[str]] = None) -> QualityArgs:
    from agents.cliargs import parse_dataclass

    return parse_dataclass(QualityArgs, argv)


def build_segmenter(spec: str, seed: int) -> Any:
    """A segmenter from a spec; ``sam-tiny`` is the random-weight tiny SAM of the tests."""
    if spec == "sam-tiny":
        from segenv.segmenters import make_segmenter, tiny

        return make_segmenter("sam", model=tiny.tiny_sam(seed))
    from segenv.segmenters import make_segmenter

    return make_segmenter(spec)


def drop_fractions(trajectories) -> dict:
    """Fraction of steps whose IoU falls by more than 0.1 / 0.3 from the step before."""
    diffs = []
    for t in trajectories:
        ious = [t.initial_iou, *t.ious]
        diffs.extend(np.diff(ious).tolist())
    d = np.asarray(diffs)
    n = max(1, len(d))
    return {"steps_drop_gt_0.1": float((d < -0.1).sum() / n), "steps_drop_gt_0.3": float((d < -0.3).sum() / n)}


def env_steps_per_second(seg: Any, dataset: str, steps: int, seed: int) -> dict:
    """One env at image_size=256, random clicks, 7-click episodes: steps/s with and without resets."""
    from segenv.env import SegEnv

    env = SegEnv(dataset=dataset, split="val", segmenter=seg, image_size=256, max_clicks=7)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed, options={"index": 0})
    env.step(np.array([0.5, 0.5, 1.0], np.float32))  # warm-up
    total = step_only = 0.0
    done, k = True, 0
    for _ in range(steps):
        t0 = time.perf_counter()
        if done:
            env.reset(seed=seed + k, options={"index": k % len(env.dataset)})
            k += 1
        t1 = time.perf_counter()
        action = np.array([rng.random(), rng.random(), float(rng.random() < 0.5)], np.float32)
        _, _, term, trunc, _ = env.step(action)
        t2 = time.perf_counter()
        done = term or trunc
        total += t2 - t0
        step_only += t2 - t1
    return {"env_steps_per_s": steps / total, "env_steps_per_s_without_resets": steps / step_only}


def run(args: QualityArgs, on_row=None) -> dict:
    import torch

    from agents.oracle import OracleAgent
    from segenv.env import SegEnv
    from segenv.rollout import run_episodes, summarize

    torch.set_num_threads(args.threads)
    target = args.target_iou if args.target_iou > 0 else None
    rows = []
    for spec in args.segmenters:
        seg = build_segmenter(spec, args.seed)
        speed = env_steps_per_second(seg, args.datasets[0], args.speed_steps, args.seed)
        for ds in args.datasets:
            env = SegEnv(dataset=ds, split=args.split, segmenter=seg, image_size=64, max_clicks=args.max_clicks, target_iou=target)
            trajs = run_episodes(OracleAgent(seed=args.seed), env, args.items, seed=args.seed, desc=f"{spec}/{ds}")
            s = summarize(trajs, max_clicks=args.max_clicks)
            row = {
                "segmenter": spec,
                "dataset": ds,
                **{k: s[k] for k in ("episodes", "steps", "noc85", "noc90", "nof90", "miou", "miou_per_click", "best_iou_per_click")},
                **drop_fractions(trajs),
                "ms_per_call": 1e3 * s["segmenter_seconds_per_click"],
                **speed,
            }
            rows.append(row)
            print(format_row(row), flush=True)
            if on_row is not None:  # the JSON is rewritten after every row: an interrupted run keeps its rows
                on_row({"args": asdict(args), "rows": rows})
    return {"args": asdict(args), "rows": rows}


def format_row(r: dict) -> str:
    curve = " ".join(f"{v:.2f}" for v in r["miou_per_click"][:10])
    return (
        f"{r['segmenter']:>10} {r['dataset']:>12}  NoC85 {r['noc85']:5.2f}  NoC90 {r['noc90']:5.2f}  NoF90 {r['nof90']:3d}  "
        f"drop>.1 {100 * r['steps_drop_gt_0.1']:4.1f}%  drop>.3 {100 * r['steps_drop_gt_0.3']:4.1f}%  "
        f"{r['ms_per_call']:6.1f} ms/call  {r['env_steps_per_s']:6.1f} steps/s  mIoU@1.. {curve}"
    )


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = result["args"]["datasets"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for r in (r for r in result["rows"] if r["dataset"] == ds):
            curve = r["miou_per_click"]
            ax.plot(range(1, len(curve) + 1), curve, marker=".", label=f"{r['segmenter']} (NoC90 {r['noc90']:.2f})")
        ax.set(title=f"{ds} {result['args']['split']}: oracle", xlabel="clicks", ylabel="mIoU", ylim=(0, 1))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run(args, on_row=lambda partial: out.write_text(json.dumps(partial, indent=1)))
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
