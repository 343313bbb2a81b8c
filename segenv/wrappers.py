"""Wrappers for RL libraries that cannot take a Text observation (stable-baselines3).

``TextToTokens`` turns ``obs["text"]`` into a fixed-length ``Box(uint8)`` of byte codes (0 =
padding), so the expression stays in the observation without any tokenizer; ``make_sb3_env``
composes it with a smaller observation size and keeps only the keys a policy needs.
"""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class TextToTokens(gym.ObservationWrapper):
    """Replace the ``text`` key by ``text_tokens``: ``uint8[max_length]`` byte codes, 0-padded."""

    def __init__(self, env: gym.Env, max_length: int = 64) -> None:
        super().__init__(env)
        self.max_length = int(max_length)
        inner = dict(env.observation_space.spaces)
        inner.pop("text")
        inner["text_tokens"] = spaces.Box(0, 255, (self.max_length,), np.uint8)
        self.observation_space = spaces.Dict(inner)

    def observation(self, observation: dict) -> dict:
        obs = dict(observation)
        data = obs.pop("text").encode("ascii", "replace")[: self.max_length]
        tokens = np.zeros(self.max_length, np.uint8)
        tokens[: len(data)] = np.frombuffer(data, np.uint8)
        obs["text_tokens"] = tokens
        return obs


def make_sb3_env(
    env_id: str = "SegAgent-Shapes-v0",
    keys: Sequence[str] = ("overlay", "text_tokens"),
    image_size: int = 64,
    max_text_length: int = 64,
    **kwargs,
) -> gym.Env:
    """An env that stable-baselines3's ``PPO("MultiInputPolicy")`` accepts: Dict of uint8 Boxes."""
    import segenv  # noqa: F401  (registers ids)

    env = gym.make(env_id, image_size=image_size, **kwargs)
    env = TextToTokens(env, max_text_length)
    return gym.wrappers.FilterObservation(env, filter_keys=list(keys))
