"""Segmentation and interactive-segmentation metrics as pure functions (docs/conventions.md#metrics).

* ``iou``: per item, ignore pixels excluded from intersection and union; empty union counts 1.
* gIoU / mIoU: mean of per-item IoUs; cIoU: sum of intersections over sum of unions.
* NoC@t: 1 + index of the first click whose IoU >= t, else ``max_clicks``; NoF@t: number of items
  whose NoC@t equals ``max_clicks`` (RITM counts items first reaching t at the last click too).
* stop-at-best rate: of the episodes an agent ended itself, the share that kept a mask within a
  tolerance of the best IoU they reached (how well it knows when to stop).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt


def intersection_union(
    pred: npt.NDArray[np.bool_], gt: npt.NDArray[np.bool_], ignore: Optional[npt.NDArray[np.bool_]] = None
) -> tuple[int, int]:
    """Pixel counts ``(|pred & gt|, |pred | gt|)`` over the non-ignored pixels."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    pred = pred.astype(bool, copy=False)
    gt = gt.astype(bool, copy=False)
    inter, union = pred & gt, pred | gt
    if ignore is not None:
        keep = ~ignore.astype(bool, copy=False)
        inter, union = inter & keep, union & keep
    return int(inter.sum()), int(union.sum())


def iou(pred, gt, ignore=None) -> float:
    """Intersection over union of two HxW bool masks; 1.0 when both are empty."""
    inter, union = intersection_union(pred, gt, ignore)
    return 1.0 if union == 0 else inter / union


def ciou(intersections: Sequence[int], unions: Sequence[int]) -> float:
    """Cumulative IoU: ``sum(I) / sum(U)`` over items (LISA's headline number)."""
    total = float(np.sum(unions))
    return 1.0 if total == 0 else float(np.sum(intersections)) / total


def carry_forward(ious: Sequence[float], length: int) -> npt.NDArray[np.float64]:
    """Pad a per-click IoU list to ``length`` by repeating its last value (early stop keeps its mask).

    An empty list (no click made) is padded with 0.0.
    """
    out = np.zeros(length, np.float64)
    if len(ious):
        n = min(len(ious), length)
        out[:n] = ious[:n]
        out[n:] = ious[n - 1]
    return out


def miou_per_click(per_item_ious: Sequence[Sequence[float]], max_clicks: int) -> npt.NDArray[np.float64]:
    """Mean IoU after click 1..max_clicks, items that stopped early carrying their last IoU."""
    if not per_item_ious:
        return np.zeros(max_clicks)
    return np.stack([carry_forward(x, max_clicks) for x in per_item_ious]).mean(axis=0)


def noc(ious: Sequence[float], threshold: float, max_clicks: int = 20) -> int:
    """Number of clicks to reach ``threshold`` (1-based); ``max_clicks`` if never reached."""
    for i, value in enumerate(list(ious)[:max_clicks]):
        if value >= threshold:
            return i + 1
    return max_clicks


def mean_noc(per_item_ious: Sequence[Sequence[float]], threshold: float, max_clicks: int = 20) -> float:
    if not per_item_ious:
        return float("nan")
    return float(np.mean([noc(x, threshold, max_clicks) for x in per_item_ious]))


def nof(per_item_ious: Sequence[Sequence[float]], threshold: float, max_clicks: int = 20) -> int:
    """Number of failures: items whose NoC@threshold is ``max_clicks``."""
    return int(sum(noc(x, threshold, max_clicks) >= max_clicks for x in per_item_ious))


def stop_at_best_rate(curves: Sequence[Sequence[float]], tolerance: float = 0.02) -> float:
    """Share of stopped episodes whose final IoU is within ``tolerance`` of their best IoU.

    Each curve is one episode that the agent ended itself: its IoU before the first step, then
    after every step (the last value is the mask it kept). NaN when there is no curve.
    """
    curves = [list(c) for c in curves if len(c)]
    if not curves:
        return float("nan")
    return float(np.mean([c[-1] >= max(c) - tolerance for c in curves]))
