"""Every id's spec carries its time limit, and the TimeLimit agrees with the env's ``max_clicks``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import segenv
from segenv import BoxPrompt, Click
from segenv.wrappers import ClickBudgetTimeLimit

MISS = Click(0.01, 0.01, positive=False)  # a click in a corner: never reaches a target, never ends early


def _steps_until_end(env: gym.Env, first=None) -> list[bool]:
    """Truncation flags of one episode (no target_iou, so only truncation can end it)."""
    env.reset(seed=0)
    flags = []
    action = first or MISS
    while True:
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        flags.append(truncated)
        if truncated:
            return flags
        action = MISS


@pytest.mark.parametrize("env_id", sorted(segenv.ENV_SPECS))
def test_spec_max_episode_steps_is_max_clicks_plus_one(env_id):
    _, _, extra = segenv.ENV_SPECS[env_id]
    max_clicks = extra.get("max_clicks", 7)  # SegEnv's default
    assert gym.spec(env_id).max_episode_steps == max_clicks + 1  # clicks + a box first action


@pytest.mark.parametrize("max_clicks", [3, 10])
def test_max_clicks_given_to_make_sets_the_time_limit(max_clicks):
    env = gym.make("SegAgent-Shapes-v0", max_clicks=max_clicks, image_size=32)
    assert env.spec.max_episode_steps == max_clicks + 1 and isinstance(env, ClickBudgetTimeLimit)
    flags = _steps_until_end(env)
    assert len(flags) == max_clicks  # truncated after the last click, not before (10 > the id's 8)


def test_box_first_action_keeps_every_click():
    env = gym.make("SegAgent-Shapes-v0", max_clicks=2, image_size=32)
    flags = _steps_until_end(env, first=BoxPrompt(0.2, 0.2, 0.8, 0.8))
    assert flags == [False, False, True]  # box + 2 clicks = max_episode_steps


def test_shorter_explicit_limit_is_kept_and_reported():
    env = gym.make("SegAgent-Shapes-v0", max_clicks=5, max_episode_steps=2, image_size=32)
    assert env.spec.max_episode_steps == 2
    assert _steps_until_end(env) == [False, True]


def test_spec_rebuilds_the_same_env():
    env = gym.make("SegAgent-Shapes-v0", max_clicks=3, image_size=32)
    again = gym.make(env.spec)
    assert again.spec.max_episode_steps == 4 and again.spec.kwargs["max_clicks"] == 3
    assert _steps_until_end(again) == [False, False, True]


def test_vector_env_truncates_at_max_clicks():
    envs = gym.make_vec("SegAgent-Shapes-v0", num_envs=2, vectorization_mode="sync", max_clicks=3, image_size=32)
    envs.reset(seed=0)
    action = np.tile(np.array([0.01, 0.01, 0.0], np.float32), (2, 1))  # negative corner clicks
    truncs = [envs.step(action)[3].tolist() for _ in range(3)]
    assert truncs == [[False, False], [False, False], [True, True]]
    envs.close()
