"""stable-baselines3 runs on the env through the documented wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from segenv.wrappers import TextToTokens, make_sb3_env

sb3 = pytest.importorskip("stable_baselines3")


def test_text_tokens_round_trip():
    import gymnasium as gym
    import segenv  # noqa: F401

    env = TextToTokens(gym.make("SegAgent-Shapes-v0", image_size=32), max_length=64)
    obs, _ = env.reset(seed=0)
    tokens = obs["text_tokens"]
    assert tokens.dtype == np.uint8 and tokens.shape == (64,)
    assert bytes(tokens[tokens > 0]).decode() == env.unwrapped._text
    assert env.observation_space.contains(obs)


def test_sb3_check_env_and_short_ppo_run():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env

    env = make_sb3_env(image_size=64, max_clicks=2)  # NatureCNN needs >= 36 px
    check_env(env, warn=False)
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
