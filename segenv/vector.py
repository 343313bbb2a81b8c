"""SegVectorEnv: K SegEnvs stepped together, with ONE batched segmenter call per vector step.

Why a native vector env: in a sync vector env each sub-env calls its segmenter alone, so K
sub-envs pay K decoder forwards of batch 1. Here every sub-env runs the first half of
:meth:`segenv.env.SegEnv.step` (validate the action, build its prompts), then one
:func:`segenv.segmenters.predict_batch` call segments all of them (clicknet: one decoder forward
over the K cached image features; other backends: a loop), then every sub-env runs the second
half (store prompts, IoU, reward, observation). The rules live once, in ``SegEnv``; this module
only batches and follows gymnasium's vector conventions (as ``CartPoleVectorEnv``).

Equivalence: for the same seeds, observations (Text included), rewards, terminated / truncated,
infos and NEXT_STEP autoresets equal ``gym.make_vec(id, vectorization_mode="sync")``: each
sub-env is a plain ``SegEnv`` seeded as the sync mode seeds it (``seed + i``), the time limit is
the registered one (``segenv.wrappers.ClickBudgetTimeLimit``'s bound), and infos are batched by
``VectorEnv._add_info``. clicknet's batched forward differs from batch-1 forwards by float
rounding (logits ~1e-5); masks are thresholded, so observations and rewards agree (tested).

Making it through gymnasium: ``gym.make_vec(segenv.vector.vector_spec("SegAgent-Shapes-v0"),
num_envs=8, vectorization_mode="vector_entry_point")``. The registered ids cannot carry the
``vector_entry_point`` themselves: gymnasium 1.4's ``make_vec`` refuses that mode for any spec with
``additional_wrappers`` (ours carry ``ClickBudgetTimeLimit``), and a spec that names a vector entry
point makes it ``make_vec``'s default, which would then fail. :func:`vector_spec` is the id's spec
with the vector entry point and without those single-env wrappers (this env applies the same
time limit itself).
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from .env import PendingStep, SegEnv
from .segmenters import predict_batch, spawn_segmenters

__all__ = ["SegVectorEnv", "VECTOR_ENTRY_POINT", "vector_spec"]

VECTOR_ENTRY_POINT = "segenv.vector:SegVectorEnv"


class SegVectorEnv(VectorEnv):
    """``num_envs`` :class:`~segenv.env.SegEnv` sub-envs, one batched segmenter call per step.

    Arguments: ``num_envs`` (>= 1); ``max_episode_steps`` (None: the env's own bound,
    ``max_clicks + 1``; a smaller value truncates earlier, as ``gym.make(..., max_episode_steps=)``);
    ``segmenter`` / ``segmenter_kwargs`` (a name builds one segmenter and ``spawn()``s the others
    onto the same weights when the backend can, see :func:`segenv.segmenters.spawn_segmenters`);
    every other keyword goes to each ``SegEnv`` unchanged.

    Spaces: ``single_observation_space`` / ``single_action_space`` are ``SegEnv``'s; the batched
    spaces come from ``gymnasium.vector.utils.batch_space`` (``text`` is a tuple of strings).
    ``step`` takes a ``float32 [num_envs, 3]`` array (``[num_envs, 4]`` with ``action_mode="full"``)
    or a sequence of ``num_envs`` actions in any form ``SegEnv.step`` takes. Autoreset: NEXT_STEP
    (gymnasium's default): the step after an episode ends resets that sub-env, ignores its action
    and returns reward 0 and its reset info.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: Optional[int] = None,
        segmenter: Any = "grabcut",
        segmenter_kwargs: Optional[dict] = None,
        render_mode: Optional[str] = None,
        **env_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.num_envs = int(num_envs)
        segmenters = spawn_segmenters(segmenter, self.num_envs, **(segmenter_kwargs or {}))
        self.envs = [SegEnv(segmenter=seg, render_mode=render_mode, **env_kwargs) for seg in segmenters]
        first = self.envs[0]
        self.render_mode = render_mode
        self.metadata = {**first.metadata, **self.metadata}
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        bound = first.max_clicks + 1  # ClickBudgetTimeLimit's bound: every click plus a box first action
        if max_episode_steps is not None:
            if int(max_episode_steps) < 1:
                raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
            bound = min(bound, int(max_episode_steps))
        self.max_episode_steps = bound
        self._elapsed = np.zeros(self.num_envs, np.int64)
        self._autoreset = np.zeros(self.num_envs, np.bool_)

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: "int | Sequence[Optional[int]] | None" = None, options: Optional[dict] = None):
        """Reset every sub-env (``options["reset_mask"]``: only those), seeded as the sync mode:
        an int seed gives sub-env ``i`` the seed ``seed + i``."""
        seeds = self._seeds(seed)
        options = dict(options) if options else {}
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, np.bool_)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,) and mask.any()):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with a True value")
        infos: dict = {}
        obs: list = [None] * self.num_envs
        for i in np.flatnonzero(mask):
            obs[i], info = self.envs[i].reset(seed=seeds[i], options=options or None)
            self._elapsed[i] = 0
            self._autoreset[i] = False
            infos = self._add_info(infos, info, int(i))
        if not mask.all():  # partial reset: the others keep their current observation
            for i in np.flatnonzero(~mask):
                obs[i] = self.envs[i]._observation()
        return self._batch(obs), infos

    def step(self, actions: Any):
        """One vector step. Every sub-env validates its action before any segmenter call, so a
        malformed action (``ValueError``) or a segmenter error leaves ALL sub-envs as they were."""
        actions = self._split_actions(actions)
        n = self.num_envs
        pending: list[Optional[PendingStep]] = [None] * n
        for i in range(n):
            if not self._autoreset[i]:
                pending[i] = self.envs[i]._prepare_step(actions[i])
        asks = [i for i in range(n) if pending[i] is not None and pending[i].prompt is not None]
        answers = predict_batch([(self.envs[i].segmenter, pending[i].prompt) for i in asks])
        prediction = dict(zip(asks, answers))
        obs: list = [None] * n
        rewards = np.zeros(n, np.float64)
        terminated = np.zeros(n, np.bool_)
        truncated = np.zeros(n, np.bool_)
        infos: dict = {}
        for i in range(n):
            env = self.envs[i]
            if self._autoreset[i]:
                obs[i], info = env.reset()
                self._elapsed[i] = 0
            else:
                step = pending[i]
                assert step is not None
                obs[i], rewards[i], terminated[i], truncated[i], info = env._finish_step(step, prediction.get(i))
                self._elapsed[i] += 1
                if self._elapsed[i] >= self.max_episode_steps:  # as gymnasium's TimeLimit
                    truncated[i] = True
            infos = self._add_info(infos, info, i)
        self._autoreset = terminated | truncated
        return self._batch(obs), rewards, terminated, truncated, infos

    def render(self) -> Optional[tuple]:
        """Each sub-env's ``render()`` frame (``render_mode="rgb_array"``), as the sync mode."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    # ------------------------------------------------------------------ helpers
    def _seeds(self, seed: "int | Sequence[Optional[int]] | None") -> list[Optional[int]]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"need one seed per sub-env: num_envs={self.num_envs}, got {len(seeds)} seeds")
        return seeds

    def _split_actions(self, actions: Any) -> list[Any]:
        """One action per sub-env; a clear error for a batch of the wrong shape."""
        if isinstance(actions, np.ndarray):
            want = (self.num_envs, *self.single_action_space.shape)
            if actions.shape != want:
                raise ValueError(f"actions must have shape {want} (num_envs x action), got {actions.shape}")
            return list(actions)
        if isinstance(actions, (list, tuple)):
            if len(actions) != self.num_envs:
                raise ValueError(f"need one action per sub-env: num_envs={self.num_envs}, got {len(actions)} actions")
            return list(actions)
        raise ValueError(f"actions must be an array of shape ({self.num_envs}, ...) or a list of {self.num_envs} actions, got {type(actions).__name__}")

    def _batch(self, observations: list) -> Any:
        """Stack per-env observations into fresh arrays (the caller may keep them across steps)."""
        out = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.zeros)
        return concatenate(self.single_observation_space, observations, out)


def vector_spec(env_id: str) -> EnvSpec:
    """The registered ``env_id``'s spec, made for ``vectorization_mode="vector_entry_point"``.

    It names :class:`SegVectorEnv` as its vector entry point and drops the single-env
    ``additional_wrappers`` (gymnasium refuses them in that mode; this env applies the same
    time limit) and the registered ``max_episode_steps`` (the env's own bound follows a
    ``max_clicks`` given to ``make_vec``; a ``max_episode_steps`` given there still applies).
    """
    spec = copy.deepcopy(gym.spec(env_id))
    spec.vector_entry_point = VECTOR_ENTRY_POINT
    spec.additional_wrappers = ()
    spec.max_episode_steps = None
    return spec
