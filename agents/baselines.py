"""Baseline agents: uniformly random clicks (the floor every policy must beat)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from segenv.actions import Click


@dataclass
class RandomAgent:
    """Clicks uniformly at random; positive with probability ``p_positive`` (first click always positive)."""

    seed: int = 0
    p_positive: float = 0.5
    needs_gt: bool = False
    _rng: Optional[np.random.Generator] = field(default=None, repr=False)
    _step: int = 0

    def reset(self, obs: dict, info: dict) -> None:
        self._rng = np.random.default_rng([self.seed, info.get("sample_index", 0)])
        self._step = 0

    def act(self, obs: dict, info: dict) -> Any:
        assert self._rng is not None, "call reset() first"
        positive = self._step == 0 or bool(self._rng.random() < self.p_positive)
        self._step += 1
        x, y = self._rng.random(2)
        return Click(float(x), float(y), positive)
