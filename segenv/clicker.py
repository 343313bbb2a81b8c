"""The distance-transform click simulator F_sim (paper Alg. 3) with RITM's conventions.

Pure numpy/cv2, no model inside (docs/conventions.md#clicker):

* errors: ``fn = gt & ~pred & ~ignore``, ``fp = ~gt & pred & ~ignore``;
* both are padded by one pixel of zeros before ``cv2.distanceTransform(DIST_L2, 0)`` and cropped
  back, so the image border counts as boundary;
* the exact pixels already clicked (either sign) are zeroed; nothing else is excluded;
* positive iff ``max(fn_dist) > max(fp_dist)`` strictly (a tie gives a negative click);
* location: the first maximum in raster order, or (``tie_break="random"``, FocSAM) a seeded
  random choice among the maxima.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Optional

import cv2
import numpy as np
import numpy.typing as npt

TieBreak = Literal["first", "random"]


@dataclass(frozen=True)
class PixelClick:
    """A click on pixel ``(row, col)`` of the image it was computed on."""

    row: int
    col: int
    positive: bool


def padded_distance(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Exact L2 distance to the nearest zero pixel, treating outside the image as zero.

    OpenCV's IPP ``distanceTransform`` is not deterministic at ties (0.05% of RITM clicks
    differed between runs), so IPP is switched off for this call only and restored after:
    the same masks give the same click in every run and process.
    """
    padded = np.pad(mask.astype(np.uint8), 1, mode="constant")
    ipp = cv2.ipp.useIPP()
    if ipp:
        cv2.ipp.setUseIPP(False)
    try:
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, 0)
    finally:
        if ipp:
            cv2.ipp.setUseIPP(True)
    return dist[1:-1, 1:-1]


def first_maximum(dist: npt.NDArray[np.float32]) -> tuple[float, int, int]:
    """``(value, row, col)`` of the first maximum of ``dist`` in raster order (RITM's tie rule):
    with :func:`padded_distance`, the deepest pixel of a region."""
    flat = int(np.argmax(dist))
    row, col = divmod(flat, dist.shape[1])
    return float(dist[row, col]), int(row), int(col)


def next_click(
    gt: npt.NDArray[np.bool_],
    pred: npt.NDArray[np.bool_],
    ignore: Optional[npt.NDArray[np.bool_]] = None,
    clicked: Iterable[tuple[int, int]] = (),
    tie_break: TieBreak = "first",
    rng: Optional[np.random.Generator] = None,
) -> Optional[PixelClick]:
    """The simulated annotator's next click, or ``None`` when no pixel is in error.

    Args:
        gt: HxW bool ground truth.
        pred: HxW bool current mask.
        ignore: HxW bool pixels that are neither object nor background (e.g. Berkeley's band).
        clicked: ``(row, col)`` pixels already clicked; they are never clicked again.
        tie_break: ``"first"`` (RITM, raster order) or ``"random"`` (FocSAM; needs ``rng``).
    """
    if gt.shape != pred.shape:
        raise ValueError(f"gt {gt.shape} and pred {pred.shape} must have the same shape")
    gt = gt.astype(bool, copy=False)
    pred = pred.astype(bool, copy=False)
    valid = ~ignore.astype(bool) if ignore is not None else np.ones_like(gt)
    fn_dist = padded_distance(gt & ~pred & valid)
    fp_dist = padded_distance(~gt & pred & valid)
    for row, col in clicked:
        fn_dist[row, col] = 0.0
        fp_dist[row, col] = 0.0
    fn_max, fp_max = float(fn_dist.max()), float(fp_dist.max())
    if max(fn_max, fp_max) <= 0.0:
        return None
    positive = fn_max > fp_max
    dist, best = (fn_dist, fn_max) if positive else (fp_dist, fp_max)
    if tie_break == "first":
        _, row, col = first_maximum(dist)
    elif tie_break == "random":
        if rng is None:
            raise ValueError("tie_break='random' needs a seeded np.random.Generator as rng")
        rows, cols = np.nonzero(dist == best)
        i = int(rng.integers(len(rows)))
        row, col = int(rows[i]), int(cols[i])
    else:
        raise ValueError(f"tie_break must be 'first' or 'random', got {tie_break!r}")
    return PixelClick(int(row), int(col), positive)


@dataclass
class Clicker:
    """Stateful F_sim for one object: remembers its clicks so no pixel is clicked twice."""

    gt: npt.NDArray[np.bool_]
    ignore: Optional[npt.NDArray[np.bool_]] = None
    tie_break: TieBreak = "first"
    rng: Optional[np.random.Generator] = None
    clicks: list[PixelClick] = field(default_factory=list)

    def step(self, pred: npt.NDArray[np.bool_]) -> Optional[PixelClick]:
        click = next_click(
            self.gt, pred, self.ignore, [(c.row, c.col) for c in self.clicks], self.tie_break, self.rng
        )
        if click is not None:
            self.clicks.append(click)
        return click
