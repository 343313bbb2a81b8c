"""The click oracle: SegAgent's F_sim (paper Alg. 3) acting in the env.

It reads ``info["gt_mask"]`` (it declares ``needs_gt``) and the current mask at the sample's
original resolution (``info["pred_mask"]``) and clicks with :func:`segenv.clicker.next_click`:
RITM's padded distance transform, never the same pixel twice, ties to negative.

It ends the episode itself with the env's end actions:

* ``NoObject`` when the target is empty (a no-target item: the text refers to nothing here);
* ``Finish`` (:data:`segenv.actions.STOP`) when the clicker has nothing left to fix, or, with
  ``finish_iou`` set, as soon as the current mask's IoU reaches it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from segenv.actions import NO_OBJECT, STOP, Click
from segenv.clicker import TieBreak, next_click


@dataclass
class OracleAgent:
    """The RITM clicker as an agent.

    Attributes:
        tie_break: ``"first"`` (RITM: first maximum in raster order) or ``"random"`` (FocSAM:
            a seeded draw among the maxima).
        seed: seeds the ``"random"`` tie break together with a stable hash (CRC-32) of the
            sample id, so the same sample gets the same clicks in every process.
        finish_iou: ``Finish`` once the current IoU is ``>= finish_iou`` (in (0, 1]). None (the
            default): only when nothing is left to fix (no false-negative or false-positive
            pixel the clicker can still click), so the oracle uses its whole click budget as
            RITM's protocol does.
    """

    tie_break: TieBreak = "first"
    seed: int = 0
    finish_iou: Optional[float] = None
    needs_gt: bool = True
    _clicked: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _rng: Optional[np.random.Generator] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.finish_iou is not None and not 0.0 < float(self.finish_iou) <= 1.0:
            raise ValueError(f"finish_iou must be in (0, 1] or None, got {self.finish_iou}")

    def reset(self, obs: dict, info: dict) -> None:
        self._clicked = []
        sample_hash = zlib.crc32(str(info.get("sample_id", "")).encode("utf-8"))
        self._rng = np.random.default_rng([int(self.seed), sample_hash])

    def act(self, obs: dict, info: dict) -> Any:
        if "gt_mask" not in info:
            raise ValueError("OracleAgent needs info['gt_mask']; run it through segenv.rollout (needs_gt=True)")
        gt = np.asarray(info["gt_mask"], bool)
        ignore = info.get("gt_ignore")
        if not (gt if ignore is None else gt & ~np.asarray(ignore, bool)).any():
            return NO_OBJECT
        if self.finish_iou is not None and float(info["iou"]) >= self.finish_iou:
            return STOP
        click = next_click(gt, info["pred_mask"], ignore, self._clicked, self.tie_break, self._rng)
        if click is None:
            return STOP
        self._clicked.append((click.row, click.col))
        h, w = gt.shape
        return Click.from_pixel(click.row, click.col, h, w, click.positive)
