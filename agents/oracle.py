"""The click oracle: SegAgent's F_sim (paper Alg. 3) acting in the env.

It reads ``info["gt_mask"]`` (it declares ``needs_gt``) and the current mask at the sample's
original resolution (``info["pred_mask"]``) and clicks with :func:`segenv.clicker.next_click`:
RITM's padded distance transform, never the same pixel twice, ties to negative.
When nothing is wrong any more it returns ``STOP``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from segenv.actions import Click
from segenv.clicker import TieBreak, next_click
from segenv.rollout import STOP


@dataclass
class OracleAgent:
    tie_break: TieBreak = "first"
    seed: int = 0
    needs_gt: bool = True
    _clicked: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _rng: Optional[np.random.Generator] = field(default=None, repr=False)

    def reset(self, obs: dict, info: dict) -> None:
        self._clicked = []
        self._rng = np.random.default_rng([self.seed, hash(info.get("sample_id", "")) & 0xFFFFFFFF])

    def act(self, obs: dict, info: dict) -> Any:
        if "gt_mask" not in info:
            raise ValueError("OracleAgent needs info['gt_mask']; run it through segenv.rollout (needs_gt=True)")
        gt = info["gt_mask"]
        click = next_click(gt, info["pred_mask"], info.get("gt_ignore"), self._clicked, self.tie_break, self._rng)
        if click is None:
            return STOP
        self._clicked.append((click.row, click.col))
        h, w = gt.shape
        return Click.from_pixel(click.row, click.col, h, w, click.positive)
