"""A ground-truth-free handle on an env for planners: "what would these actions give?".

PRM-guided tree search (paper Alg. 2, Fig. 5) needs the masks of K candidate clicks before it
commits to one. A planner must not read the ground truth, so it never gets the env itself: the
rollout harness hands an agent that defines ``attach_lookahead(lookahead)`` a :class:`Lookahead`
before each episode, which answers :meth:`Lookahead.preview` and nothing else.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["Lookahead", "attach_lookahead"]


class Lookahead:
    """``preview(actions) -> observations`` of one env (:meth:`segenv.env.SegEnv.preview`).

    The observations carry ``image``, ``overlay``, ``mask`` and ``text`` only (no IoU, no ground
    truth). Previewing changes no episode state; stepping a previewed action reuses its mask.
    """

    def __init__(self, env: Any) -> None:
        base = getattr(env, "unwrapped", env)
        if not callable(getattr(base, "preview", None)):
            raise TypeError(f"{type(base).__name__} has no preview(actions): a planner needs a segenv.SegEnv")
        self._preview = base.preview
        self.calls = 0  # preview calls made (one segmenter predict_many each)

    def preview(self, actions: Sequence[Any]) -> list[dict[str, "np.ndarray | str"]]:
        """One observation per action, as ``env.step(action)`` would return it; one segmenter call."""
        self.calls += 1
        return self._preview(list(actions))


def attach_lookahead(agent: Any, env: Any) -> bool:
    """Give ``agent`` a :class:`Lookahead` of ``env`` if it asks for one (``attach_lookahead``)."""
    attach = getattr(agent, "attach_lookahead", None)
    if not callable(attach):
        return False
    attach(Lookahead(env))
    return True
