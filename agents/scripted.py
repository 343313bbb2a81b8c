"""A scripted reference agent for the procedural datasets (``shapes`` / ``thin_shapes``).

No learning and no ground truth: it reads the expression back with
:func:`segenv.datasets.shapes.parse_expression`, finds the objects in ``obs["image"]`` with
plain image processing, picks the one the text refers to, and then clicks like the oracle does,
but against *its own* estimate of the object instead of the ground truth. It is the upper
reference a learned policy on these datasets should approach, and a check that the task is
solvable from what the policy sees.

Perception (finding the objects and their colour, shape and size) lives in
:mod:`agents.shape_detection` and :mod:`agents.shape_features`; this module picks the target and
clicks.

1. **Selection.** Filter by colour, rank by shape x size score, take the best. The grammar's
   spatial phrases (``on the left``, ``left of the <ref>``) are not read: the generator adds one
   only to tell two look-alikes apart, and it never draws look-alikes (an object with the
   shape, colour and size of one already placed is redrawn), so no caption carries one.
2. **Clicks.** First a positive click at the object's pixel farthest from its boundary
   (distance-transform maximum). Then it compares the current mask with the object: the
   largest error component (missed or extra pixels, 1-2 px slivers ignored) gets a click at
   its deepest pixel, positive or negative; negative clicks keep a margin from the object
   (GrabCut makes a disk around them sure background, which would cut a thin stroke).
   :data:`segenv.rollout.STOP` when nothing worth a click is left.

Detection runs at a working size of 512 (what the thresholds were tuned on; the env's default
observation size) and the object mask is brought back to the observation size ``S``; clicks
are normalised as ``(col + 0.5) / S``. A text the grammar does not produce, or an image with
no candidate, makes ``act`` return ``None`` (an invalid step), never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import cv2
import numpy as np
import numpy.typing as npt

from segenv.actions import Click
from segenv.clicker import first_maximum, padded_distance
from segenv.datasets.shapes import SOLID_SHAPES, THIN_SHAPES, parse_expression
from segenv.rollout import STOP

from .shape_detection import find_objects
from .shape_features import Candidate

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- selection
def _match_score(c: Candidate, size: Optional[str], shape: Optional[str]) -> float:
    score = 1.0
    if shape is not None and shape != "object":
        score *= c.shape_scores.get(shape, 1e-3)
    if size is not None:
        score *= c.size_score(size)
    return score


def select_target(parts: dict, candidates: list[Candidate]) -> Optional[Candidate]:
    """The candidate the parsed expression refers to (None if nothing fits at all)."""
    if not candidates:
        return None
    shape = parts.get("shape")
    color = parts.get("color")
    pool = [c for c in candidates if color is None or c.color == color]
    if not pool:
        pool = list(candidates)  # colour misread: rank everything by the rest
    if color is not None and shape == "object" and parts.get("size") is None:
        # colour only: the target is the one object of that colour; fragments are one object
        return max(pool, key=lambda c: c.area)
    return max(pool, key=lambda c: _match_score(c, parts.get("size"), shape))


def target_region(parts: dict, candidates: list[Candidate]) -> Optional[npt.NDArray[np.bool_]]:
    """The mask to segment at the observation resolution (None if nothing was found)."""
    target = select_target(parts, candidates)
    return None if target is None else target.mask


# ----------------------------------------------------------------------------- the agent
# the distance of each pixel of a region to its boundary (the image edge counting as one) and its
# first maximum: the clicker's own functions (one source for "the deepest pixel")
_distance, _argmax = padded_distance, first_maximum


@dataclass
class ScriptedShapesAgent:
    """Reads the procedural expression, finds the object by image processing, clicks on it.

    After the first click (the deepest pixel of the chosen object) it compares the current
    mask with the object: the error regions ``object & ~mask`` (missed) and ``mask & ~object``
    (extra) are cleaned of 1-2 px slivers (resize misalignment) and split into connected
    components; the largest component that is at least ``min_error`` in area and
    ``min_depth`` deep gets the next click, at its deepest pixel (positive for missed,
    negative for extra). A negative click keeps ``negative_margin`` away from the object, since
    the segmenter makes a disk around a negative click sure background and a thin stroke
    next to it would be cut. STOP when no such component is left.

    Args:
        min_error: smallest error component worth a click, as a fraction of the image area.
        min_depth: smallest depth (pixels from its boundary) of such a component, as a
            fraction of the side (2 px at S=512).
        negative_margin: distance a negative click keeps from the object, fraction of the side.
        thin: force thin (True) or solid (False) shape analysis; None decides from the text's
            noun (a thin noun -> thin) and otherwise per component.
    """

    min_error: float = (0.015) ** 2
    min_depth: float = 2.0 / 512
    negative_margin: float = 0.025
    thin: Optional[bool] = None
    needs_gt: bool = False
    parts: Optional[dict] = field(default=None, repr=False)
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    target: Optional[Candidate] = field(default=None, repr=False)
    region: Optional[npt.NDArray[np.bool_]] = field(default=None, repr=False)
    _clicked: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _far: Optional[npt.NDArray[np.bool_]] = field(default=None, repr=False)

    def reset(self, obs: dict, info: dict) -> None:
        self._clicked = []
        self.parts, self.candidates, self.target, self.region, self._far = None, [], None, None, None
        try:
            self.parts = parse_expression(str(obs["text"]))
        except ValueError:
            return
        thin = self.thin
        shape = self.parts.get("shape")
        if thin is None and shape in THIN_SHAPES:
            thin = True
        elif thin is None and shape in SOLID_SHAPES:
            thin = False
        try:
            self.candidates = find_objects(np.asarray(obs["image"]), thin=thin)
        except (cv2.error, ValueError) as exc:  # reset is not guarded by the harness: never crash it
            log.warning("ScriptedShapesAgent: object detection failed (%s); acting invalid", exc)
            return
        self.target = select_target(self.parts, self.candidates)
        if self.target is None or not self.target.mask.any():
            return
        region = self.region = self.target.mask
        s = region.shape[0]
        outside = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
        self._far = outside >= self.negative_margin * s

    def act(self, obs: dict, info: dict) -> Any:
        if self.region is None:
            return None  # unparsable text or nothing found: an invalid step
        region = self.region
        h, w = region.shape
        if not self._clicked:
            _, row, col = _argmax(_distance(region))
            return self._click(row, col, True)
        mask = np.asarray(obs["mask"]) > 0
        if mask.shape != region.shape:
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        k3 = np.ones((3, 3), np.uint8)
        options = []
        for positive, err in ((True, region & ~mask), (False, mask & ~region)):
            err = cv2.morphologyEx(err.astype(np.uint8), cv2.MORPH_OPEN, k3)
            n, lab, stats, _ = cv2.connectedComponentsWithStats(err, connectivity=8)
            for j in range(1, n):
                if stats[j, cv2.CC_STAT_AREA] >= self.min_error * h * w:
                    options.append((int(stats[j, cv2.CC_STAT_AREA]), positive, lab == j))
        options.sort(key=lambda o: o[0], reverse=True)
        for _, positive, comp in options:
            dist = _distance(comp)
            if dist.max() < self.min_depth * h:
                continue
            if not positive:
                assert self._far is not None
                dist[~self._far] = 0.0
            for r, c in self._clicked:
                dist[r, c] = 0.0
            d, row, col = _argmax(dist)
            if d > 0.0:
                return self._click(row, col, positive)
        return STOP

    def _click(self, row: int, col: int, positive: bool) -> Click:
        assert self.region is not None
        self._clicked.append((row, col))
        h, w = self.region.shape
        return Click((col + 0.5) / w, (row + 0.5) / h, positive)


__all__ = ["ScriptedShapesAgent", "select_target", "target_region"]
