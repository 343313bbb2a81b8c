"""#15: TextToWords gives the caption as word ids a policy can learn from (SB3 one-hot encodes them)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401  (registers the ids)
from segenv.datasets import make_dataset
from segenv.wrappers import TextToWords, make_sb3_env, shapes_vocabulary


def _words_env(**kwargs) -> TextToWords:
    return TextToWords(gym.make("SegAgent-Shapes-v0", image_size=32), **kwargs)


@pytest.mark.parametrize("name, kwargs", [("shapes", {}), ("thin_shapes", {}), ("shapes", {"no_target_fraction": 0.5})])
def test_real_captions_round_trip_with_no_unknown_word(name, kwargs):
    env = _words_env()
    data = make_dataset(name, split="train", image_size=64, length=120, **kwargs)
    seen = set()
    for i in range(len(data)):
        text = data[i].text
        ids = env.encode(text)
        assert ids.dtype == np.int64 and ids.shape == (12,)
        assert env.decode(ids) == text.lower().split()  # every word known: no <unk>
        assert (ids[len(text.split()):] == 0).all() and (ids[: len(text.split())] > 0).all()
        assert env.observation_space["text_words"].contains(ids)
        seen.update(text.split())
    assert seen <= set(shapes_vocabulary())
    assert len(shapes_vocabulary()) == 29 and env.n_ids == 29 + 1 + 32  # pad, words, default 32 buckets
    assert {"red", "blue", "circle" if name == "shapes" else "ring"} <= seen


def test_distinct_captions_get_distinct_ids():
    env = _words_env()
    a, b = env.encode("the red circle"), env.encode("the blue square")
    assert a[0] == b[0] == env.word_id("the") and a[1] != b[1] and a[2] != b[2]
    assert env.encode("The RED circle.").tolist() == a.tolist()  # case and punctuation do not matter


def test_padding_and_truncation():
    env = _words_env(max_words=4)
    ids = env.encode("the small blue ring left of the yellow star")
    assert env.decode(ids) == ["the", "small", "blue", "ring"]
    assert env.encode("").tolist() == [0, 0, 0, 0]
    assert env.observation_space["text_words"].nvec.tolist() == [env.n_ids] * 4


def test_unknown_words_hash_to_stable_buckets():
    env = _words_env(hash_buckets=8)
    v = len(env.vocabulary)
    ids = env.encode("the man in a hat")
    assert ids[0] == env.word_id("the")
    assert all(v + 1 <= i < v + 1 + 8 for i in ids[1:5])
    assert env.decode(ids)[1].startswith("<unk:")
    assert env.word_id("man") == _words_env(hash_buckets=8).word_id("man")  # no per-process salt
    assert env.n_ids == v + 1 + 8 and int(ids.max()) < env.n_ids
    single = _words_env(hash_buckets=0)
    assert {single.word_id(w) for w in ("man", "hat", "zebra")} == {v + 1} and single.n_ids == v + 2


def test_bad_arguments_and_an_env_without_text():
    with pytest.raises(ValueError, match="max_words"):
        _words_env(max_words=0)
    with pytest.raises(ValueError, match="distinct"):
        _words_env(vocabulary=["red", "red"])
    with pytest.raises(ValueError, match="'text' key"):
        TextToWords(gym.make("CartPole-v1"))


def test_make_sb3_env_words_passes_both_checkers_and_rebuilds_from_its_spec():
    from gymnasium.utils.env_checker import check_env

    env = make_sb3_env(image_size=48, max_clicks=2, text="words", max_words=10)
    obs, _ = env.reset(seed=3)
    assert set(obs) == {"overlay", "text_words"} and obs["overlay"].shape == (48, 48, 3)
    words = env.get_wrapper_attr("decode")(obs["text_words"])
    assert words == env.unwrapped._text.lower().split()
    assert [w.name for w in env.spec.additional_wrappers] == ["TextToWords", "FilterObservation"]
    again = gym.make(env.spec)
    b, _ = again.reset(seed=3)
    np.testing.assert_array_equal(obs["text_words"], b["text_words"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(env, skip_render_check=True)
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(make_sb3_env(image_size=64, max_clicks=2, text="words"), warn=False)


def test_make_sb3_env_default_is_still_bytes():
    env = make_sb3_env(image_size=48, max_clicks=2)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"overlay", "text_tokens"}
    with pytest.raises(ValueError, match="bytes"):
        make_sb3_env(image_size=48, text="chars")
