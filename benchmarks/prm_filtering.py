"""Annotation filtering with the PRM (paper E.1 / Tab. 3): predicted IoU against true IoU.

    python benchmarks/prm_filtering.py --quick --out results/prm_filtering_quick.json
    python benchmarks/prm_filtering.py --model path/to/checkpoint --items 200 --out results/prm_filtering.json

The paper's set-up: masks of varying quality made from random positive and negative points inside
the ground-truth boxes, run through the segmenter; the PRM (:class:`agents.prm.PRM`: the model's
``Current IOU: NN`` line) predicts each mask's IoU. Here the masks are the env's
``initial_state="points"`` masks (paper B.1): ``k`` pixels uniform in the GT box, labelled by GT
membership (positive on the object, negative off it), ``k`` drawn per mask from
``[min_points, max_points]``; items are the first ``--items`` of the split, ``--masks-per-item``
masks each, everything seeded from ``--seed``. The true IoU is the env's (original resolution).
``--masks wrong_object`` scores another set instead (Shapes-family envs): clean masks of a
*distractor* object, alone or beside the referent (:mod:`agents.training.tiny_wrong_object`), the
masks E.1's in-box points never make and a PRM that judges only mask quality rates high.

Reported (JSON ``--out`` + scatter PNG beside it): ``mae`` and ``mse`` (IoU in percent, as Tab. 3),
``pearson`` and ``spearman`` (scipy.stats), ``precision`` / ``recall`` of keeping the masks whose
predicted IoU >= ``keep_threshold`` when the masks worth keeping are those with true IoU >=
``good_threshold``, ``n`` (masks), ``n_unparsable`` (answers without a readable IoU line), the
true-IoU quantiles of the set, and one row per mask. Metrics use the masks whose answer parsed;
with fewer than two of them (e.g. a model that writes no IoU line: the shipped tiny checkpoint
until it is retrained) the metrics are NaN, written as null in the JSON. Published (RefCOCO val):
MAE 5.58-6.88, MSE 175-194, Pearson 0.90-0.91, Spearman 0.87-0.90.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

if __package__ in (None, ""):  # `python benchmarks/prm_filtering.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from agents.cliargs import arg, parse_dataclass  # noqa: E402

QUICK = {"items": 8, "masks_per_item": 2}  # --quick: 16 masks


@dataclass(kw_only=True)
class FilteringArgs:
    """Annotation filtering with the PRM (paper E.1 / Tab. 3): predicted IoU against true IoU."""

    env: str = arg("SegAgent-Shapes-v0", "a registered env id (its test split by default)")
    split: Optional[str] = arg(None, "dataset split (default: the env id's)")
    segmenter: Optional[str] = arg(None, "the segmenter making the masks (default: the env's)")
    data_root: Optional[str] = arg(None, "dataset root (default: $SEGAGENT_DATA)")
    image_size: Optional[int] = arg(None, "observation size S (default: the env's)")
    items: int = arg(100, "dataset items (the first N of the split); 0 = all")
    masks_per_item: int = arg(3, "masks per item, each from its own random points")
    min_points: int = arg(1, "fewest random points per mask")
    max_points: int = arg(8, "most random points per mask")
    model: Optional[str] = arg(None, "a local checkpoint folder that writes 'Current IOU' (default: the shipped tiny model)")
    max_new_tokens: Optional[int] = arg(None, "generation budget per answer (default: the policy's)")
    masks: str = arg("points", "which masks: points (paper E.1: random points in the GT box) or wrong_object "
                              "(clean masks of a distractor object; Shapes-family envs)")
    readout: str = arg("greedy", "greedy: the stated number; median or mean: of the model's distribution over "
                                 "its IoU value tokens (agents/prm.py)")
    batch_size: int = arg(16, "masks scored per batched PRM call")
    device: str = arg("auto", "auto, cpu, cuda, cuda:1, ...")
    keep_threshold: float = arg(0.8, "keep a mask when its predicted IoU >= this")
    good_threshold: float = arg(0.8, "a mask is worth keeping when its true IoU >= this")
    seed: int = arg(0, "seeds the point counts and the env resets")
    quick: bool = arg(False, "a smoke run: 8 items x 2 masks")
    out: str = arg("results/prm_filtering.json", "summary JSON path (the scatter PNG goes beside it)")

    def __post_init__(self) -> None:
        if self.items < 0 or self.masks_per_item < 1 or self.batch_size < 1:
            raise ValueError("--items must be >= 0, --masks-per-item and --batch-size >= 1")
        if self.masks not in MASK_SETS:
            raise ValueError(f"--masks is one of {sorted(MASK_SETS)}, got {self.masks!r}")
        if self.readout not in ("greedy", "median", "mean"):
            raise ValueError(f"--readout is greedy, median or mean, got {self.readout!r}")
        if not 1 <= self.min_points <= self.max_points:
            raise ValueError(f"need 1 <= --min-points <= --max-points, got {self.min_points}, {self.max_points}")
        for name in ("keep_threshold", "good_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} is an IoU fraction in [0, 1], got {getattr(self, name)}")


# ---------------------------------------------------------------------------------- metrics
def filtering_metrics(
    pred: npt.ArrayLike, true: npt.ArrayLike, keep_threshold: float = 0.8, good_threshold: float = 0.8
) -> dict:
    """Tab. 3's metrics of predicted against true IoU, plus keep/drop precision and recall.

    Args:
        pred: predicted IoUs, fractions in [0, 1], shape (N,); NaN = unparsable answer.
        true: true IoUs, fractions in [0, 1], shape (N,).
        keep_threshold / good_threshold: kept = pred >= keep_threshold; good = true >= good_threshold.

    Returns ``n``, ``n_unparsable``, ``mae`` and ``mse`` (in IoU percent), ``pearson``,
    ``spearman``, ``precision`` (good among kept), ``recall`` (kept among good), ``kept``,
    ``good``, both thresholds. All but the counts use the parsable masks only; a metric without
    enough data (no mask, fewer than two, constant input, nothing kept / nothing good) is NaN.
    """
    from scipy import stats

    pred, true = np.asarray(pred, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"pred and true need the same length, got {pred.size} and {true.size}")
    ok = ~np.isnan(pred)
    p, t = pred[ok], true[ok]
    m = int(ok.sum())
    err = 100.0 * (p - t)
    varied = m >= 2 and bool(np.ptp(p) > 0) and bool(np.ptp(t) > 0)  # correlation defined
    kept, good = p >= keep_threshold, t >= good_threshold
    n_kept, n_good, hits = int(kept.sum()), int(good.sum()), int((kept & good).sum())
    nan = math.nan
    return {
        "n": int(pred.size),
        "n_unparsable": int(pred.size - m),
        "mae": float(np.abs(err).mean()) if m else nan,
        "mse": float((err**2).mean()) if m else nan,
        "pearson": float(stats.pearsonr(p, t)[0]) if varied else nan,
        "spearman": float(stats.spearmanr(p, t)[0]) if varied else nan,
        "precision": hits / n_kept if n_kept else nan,
        "recall": hits / n_good if n_good else nan,
        "kept": n_kept,
        "good": n_good,
        "keep_threshold": float(keep_threshold),
        "good_threshold": float(good_threshold),
    }


def low_iou_confidence(pred: npt.ArrayLike, true: npt.ArrayLike, low: float = 0.1, high: float = 0.9) -> dict:
    """How a PRM rates the masks of true IoU < ``low``: ``n``, ``mean_pred`` and ``share_high``
    (predicted >= ``high``); NaN answers are left out, NaN metrics when no mask is left."""
    pred, true = np.asarray(pred, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    p = pred[(true < low) & ~np.isnan(pred)]
    return {"n": int(p.size), "mean_pred": float(p.mean()) if p.size else math.nan,
            "share_high": float((p >= high).mean()) if p.size else math.nan, "low": low, "high": high}


# ---------------------------------------------------------------------------------- the mask sets
def make_env(args: FilteringArgs):
    import gymnasium as gym

    import segenv  # noqa: F401  (registers the env ids)

    kwargs: dict[str, Any] = {"initial_state": MASK_SETS[args.masks][0]}
    for key in ("split", "segmenter", "data_root", "image_size"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    return gym.make(args.env, disable_env_checker=True, **kwargs)


def filtering_set(env: Any, args: FilteringArgs) -> Iterator[tuple[dict, dict]]:
    """``(observation, record)`` per mask; record: ``index``, ``sample_id``, ``points``, ``true_iou``."""
    base = env.unwrapped
    n = len(base.dataset)
    items = n if args.items == 0 else min(args.items, n)
    rng = np.random.default_rng(args.seed)
    for i in range(items):
        for j in range(args.masks_per_item):
            k = int(rng.integers(args.min_points, args.max_points + 1))
            base.initial_points = k  # read by the next reset's "points" initial state
            obs, info = env.reset(seed=args.seed * 1_000_003 + i * args.masks_per_item + j, options={"index": i})
            yield obs, {"index": i, "sample_id": info["sample_id"], "points": k, "true_iou": float(info["iou"])}


def wrong_object_set(env: Any, args: FilteringArgs) -> Iterator[tuple[dict, dict]]:
    """``(observation, record)`` per clean mask of a distractor (``--masks wrong_object``)."""
    from agents.training.tiny_wrong_object import wrong_object_states

    dataset = env.unwrapped.dataset
    if len(dataset) and "objects" not in dataset[0].meta:
        raise ValueError(f"--masks wrong_object needs a Shapes-family env whose items list their objects "
                         f"(e.g. SegAgent-Shapes-v0, SegAgent-ThinShapes-v0); {args.env} has none: use --masks points")
    n = len(dataset)
    items = range(n if args.items == 0 else min(args.items, n))
    for obs, info, i, _ in wrong_object_states(env, items, args.masks_per_item, np.random.default_rng(args.seed)):
        yield obs, {"index": i, "sample_id": info["sample_id"], "points": None, "true_iou": float(info["iou"])}


MASK_SETS = {"points": ("points", filtering_set), "wrong_object": ("empty", wrong_object_set)}  # --masks: initial state, set


def _batches(pairs: Iterator[tuple[dict, dict]], size: int) -> Iterator[list[tuple[dict, dict]]]:
    batch: list[tuple[dict, dict]] = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------- run
def build_prm(args: FilteringArgs) -> Any:
    from agents.prm import PRM
    from agents.registry import DEFAULT_TINY_CHECKPOINT

    extra = {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}
    return PRM.from_checkpoint(args.model or DEFAULT_TINY_CHECKPOINT, device=args.device, readout=args.readout, **extra)


def run(args: FilteringArgs, prm: Any = None) -> dict:
    """Score the mask set with ``prm`` (anything with ``score_many``; default :func:`build_prm`)."""
    if args.quick:
        args = replace(args, **QUICK)
    from tqdm.auto import tqdm

    from agents.registry import DEFAULT_TINY_CHECKPOINT

    model = args.model or (str(DEFAULT_TINY_CHECKPOINT) if prm is None else type(prm).__name__)
    prm = prm if prm is not None else build_prm(args)
    env = make_env(args)
    n_items = len(env.unwrapped.dataset) if args.items == 0 else min(args.items, len(env.unwrapped.dataset))
    rows: list[dict] = []
    prm_seconds = 0.0
    total = n_items * args.masks_per_item if args.masks == "points" else None  # wrong_object skips one-object items
    with tqdm(total=total, desc=f"PRM filtering ({args.masks}) on {args.env}") as bar:
        for batch in _batches(MASK_SETS[args.masks][1](env, args), args.batch_size):
            t0 = time.perf_counter()
            scores = prm.score_many([obs for obs, _ in batch])
            prm_seconds += time.perf_counter() - t0
            texts = list(getattr(prm, "last_texts", [])) or [None] * len(batch)
            for (_, rec), score, text in zip(batch, scores, texts):
                rows.append({**rec, "pred_iou": float(score), "text": None if text is None else text[:200]})
            bar.update(len(batch))
    base = env.unwrapped
    pred = np.array([r["pred_iou"] for r in rows])
    true = np.array([r["true_iou"] for r in rows])
    metrics = filtering_metrics(pred, true, args.keep_threshold, args.good_threshold)
    env.close()
    return {
        **metrics,
        "env": args.env,
        "split": getattr(base.dataset, "split", args.split),
        "segmenter": getattr(base.segmenter, "name", str(args.segmenter)),
        "model": model,
        "low_iou": low_iou_confidence(pred, true),
        "masks": args.masks,
        "true_iou_quantiles": dict(zip(("min", "q10", "q25", "median", "q75", "q90", "max"),
                                       np.quantile(true, [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]).tolist() if len(true) else [])),
        "prm_seconds_per_mask": prm_seconds / max(1, len(rows)),
        "args": asdict(args),
        "rows": rows,
    }


def _json_safe(value: Any) -> Any:
    """NaN -> None (strict JSON), recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def plot(result: dict, path: Path) -> None:
    """Scatter of predicted against true IoU (percent), the diagonal and both thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if not math.isnan(r["pred_iou"])]
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 100], [0, 100], color="grey", lw=1, label="prediction = truth")
    ax.axvline(100 * result["good_threshold"], color="tab:green", ls=":", lw=1, label="good threshold")
    ax.axhline(100 * result["keep_threshold"], color="tab:red", ls=":", lw=1, label="keep threshold")
    if rows:
        ax.scatter([100 * r["true_iou"] for r in rows], [100 * r["pred_iou"] for r in rows], s=10, alpha=0.6)
    else:
        ax.text(50, 50, f"no readable 'Current IOU' line\nin {result['n']} answers", ha="center", va="center")
    ax.set(xlim=(0, 101), ylim=(0, 101), xlabel="true IoU (%)", ylabel="predicted IoU (%)")
    ax.set_title(
        f"{result['env']} / {result['segmenter']}: {Path(str(result.get('model', 'PRM'))).name}, "
        f"{result.get('args', {}).get('readout', 'greedy')} readout\n"
        f"n={result['n']} (unparsable {result['n_unparsable']})  "
        f"MAE {result['mae']:.2f}  MSE {result['mse']:.1f}  Pearson {result['pearson']:.3f}  Spearman {result['spearman']:.3f}",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_summary(r: dict) -> str:
    low = r["low_iou"]
    return (
        f"PRM filtering ({r['masks']} masks) on {r['env']} [{r['split']}] / {r['segmenter']}: n={r['n']} unparsable={r['n_unparsable']}\n"
        f"  MAE {r['mae']:.2f}  MSE {r['mse']:.1f}  Pearson {r['pearson']:.3f}  Spearman {r['spearman']:.3f}\n"
        f"  keep pred>={r['keep_threshold']:.2f} | good true>={r['good_threshold']:.2f}: "
        f"precision {r['precision']:.3f}  recall {r['recall']:.3f}  (kept {r['kept']}, good {r['good']})\n"
        f"  true IoU < {low['low']:.1f}: {low['n']} masks, mean predicted {low['mean_pred']:.3f}, "
        f"share predicted >= {low['high']:.1f}: {low['share_high']:.2f}"
    )


def main(argv: Optional[Sequence[str]] = None, prm: Any = None) -> dict:
    """Parse the flags (default ``sys.argv[1:]``), run, write ``--out`` and the PNG; return the result."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_dataclass(FilteringArgs, argv, prog="prm_filtering.py")
    result = run(args, prm)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(result), indent=1, allow_nan=False))
    plot(result, out.with_suffix(".png"))
    print(format_summary(result))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
