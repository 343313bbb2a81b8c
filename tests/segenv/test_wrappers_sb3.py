"""The SB3-ready env follows gymnasium's wrapper conventions and passes both env checkers."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401  (registers the ids)
from segenv.wrappers import TextToTokens, make_sb3_env


def test_text_tokens_round_trip():
    env = TextToTokens(gym.make("SegAgent-Shapes-v0", image_size=32), max_length=64)
    obs, _ = env.reset(seed=0)
    tokens = obs["text_tokens"]
    assert tokens.dtype == np.uint8 and tokens.shape == (64,)
    assert bytes(tokens[tokens > 0]).decode() == env.unwrapped._text
    assert env.observation_space.contains(obs)


def test_text_tokens_rejects_an_env_without_text():
    with pytest.raises(ValueError, match="'text' key"):
        TextToTokens(gym.make("CartPole-v1"))


def test_wrapped_spec_records_the_wrappers_and_rebuilds_the_env():
    env = make_sb3_env(image_size=48, max_clicks=2, max_text_length=32)
    spec = env.spec
    assert [w.name for w in spec.additional_wrappers] == ["TextToTokens", "FilterObservation"]
    assert spec.additional_wrappers[0].kwargs == {"max_length": 32}
    assert spec.max_episode_steps == 3 and spec.kwargs["max_clicks"] == 2 and spec.kwargs["image_size"] == 48
    again = gym.make(spec)
    assert again.observation_space == env.observation_space and again.spec == spec
    a, _ = env.reset(seed=5)
    b, _ = again.reset(seed=5)
    assert set(a) == {"overlay", "text_tokens"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    env = make_sb3_env(image_size=48, max_clicks=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test ...
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")  # ... but "it is wrapped"
        check_env(env, skip_render_check=True)


def test_sb3_check_env_and_short_ppo_run():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env

    env = make_sb3_env(image_size=64, max_clicks=2)  # NatureCNN needs >= 36 px
    check_env(env, warn=False)
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))


def test_click_grid_round_trip_and_check_env():
    """#15 / #21: the discrete click grid maps every index to an action and back; on a full-mode env
    Finish and No object are the two extra cells; the wrapped env passes gymnasium's check_env."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import segenv  # noqa: F401
    from segenv.actions import Click, Finish, NoObject
    from segenv.wrappers import ClickGrid

    full = ClickGrid(gym.make("SegAgent-Shapes-v0", image_size=32, action_mode="full"), grid=4)
    assert full.action_space.n == 2 * 16 + 2
    for i in range(full.action_space.n):
        assert full.index_of(full.to_action(i)) == i
    assert full.to_action(0) == Click(0.125, 0.125, False) and full.to_action(16 + 6) == Click(0.625, 0.375, True)
    assert isinstance(full.to_action(32), Finish) and isinstance(full.to_action(33), NoObject)
    check_env(full, skip_render_check=True)
    obs, _ = full.reset(seed=0, options={"index": 0})
    _, _, terminated, _, info = full.step(32)  # Finish ends the episode and keeps the mask
    assert terminated and info["end_action"] == "finish"
    click = ClickGrid(gym.make("SegAgent-Shapes-v0", image_size=32), grid=4)
    assert click.action_space.n == 32
    check_env(click, skip_render_check=True)
    with pytest.raises(ValueError, match="full"):
        click.index_of(Finish())
    with pytest.raises(ValueError, match="outside"):
        click.to_action(32)
    assert gym.make(click.spec).action_space.n == 32  # the spec records the wrapper


def test_sb3_ppo_runs_through_the_click_grid():
    sb3 = pytest.importorskip("stable_baselines3")
    from segenv.wrappers import ClickGrid, make_sb3_env

    env = ClickGrid(make_sb3_env(image_size=64, max_clicks=2, action_mode="full"), grid=4)
    model = sb3.PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=128)
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert 0 <= int(action) < env.action_space.n
