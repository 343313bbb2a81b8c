"""Baseline agents: uniformly random clicks (the floor every policy must beat) and the zero-click text baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from segenv.actions import Click, Finish, NoObject


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


@dataclass
class TextOnlyAgent:
    """The zero-click baseline: the text segmenter's mask as the answer (``--agent sam3-text``).

    The mask comes from the env's ``initial_state="text"`` (one text-model call per episode, in
    ``reset``); the agent only ends the episode at step 1: ``NoObject`` when the answer is empty
    (no instance reached the text segmenter's threshold: recorded as an empty mask, and right on
    a no-target item), else ``Finish``, keeping the mask. It uses no click, so the harness
    reports its mIoU / cIoU with 0 clicks used beside the clicking agents.

    Args:
        text_segmenter: the text segmenter spec the env is built with (``"sam3:/path/to/sam3"``).
    """

    text_segmenter: str
    needs_gt: bool = False

    @property
    def env_overrides(self) -> dict[str, Any]:
        """Env arguments this agent needs (the harness applies them before it builds the env)."""
        return {"initial_state": "text", "text_segmenter": self.text_segmenter}

    def reset(self, obs: dict, info: dict) -> None:
        if "text_score" not in info:
            raise ValueError("the sam3-text agent needs an env made with initial_state='text' (its env_overrides)")

    def act(self, obs: dict, info: dict) -> Any:
        return Finish() if np.asarray(obs["mask"]).any() else NoObject()
