"""The agent protocol: a plain object with ``reset`` and ``act``.

``act`` returns a :class:`segenv.actions.Click` / :class:`segenv.actions.BoxPrompt` (or any
array form the env accepts), ``None`` for an invalid step, or :data:`STOP` to end the episode.
Agents never read the ground truth unless they set ``needs_gt = True`` (only the oracle does);
the rollout harness removes ``gt_mask`` from ``info`` for everyone else.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from segenv.rollout import STOP


@runtime_checkable
class Agent(Protocol):
    needs_gt: bool

    def reset(self, obs: dict, info: dict) -> None: ...

    def act(self, obs: dict, info: dict) -> Any: ...


__all__ = ["Agent", "STOP"]
