"""segenv.vector: the native vector env equals the sync (and async) modes for the same seeds,
and the batched segmenter call equals one call per image."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401  (registers the ids)
from segenv.segmenters import GrabCutSegmenter, Prompt, make_segmenter, predict_batch, spawn_segmenters
from segenv.vector import SegVectorEnv, vector_spec

ID = "SegAgent-Shapes-v0"
SMALL = dict(image_size=48, max_clicks=3)


def assert_same(a, b, where: str = "") -> None:
    """Recursive equality over dicts / tuples / (object) arrays / scalars, with a path in the error."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and a.shape == b.shape, f"{where}: shape {a.shape} != {getattr(b, 'shape', None)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        np.testing.assert_array_equal(a, b, err_msg=where)
        assert np.asarray(a).dtype == np.asarray(b).dtype, f"{where}: dtype {np.asarray(a).dtype} != {np.asarray(b).dtype}"
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def random_actions(rng: np.random.Generator, n: int, dim: int, end_rate: float) -> np.ndarray:
    """Random clicks; in full mode (dim 4) an end action (Finish / NoObject) at ``end_rate``."""
    a = rng.random((n, dim)).astype(np.float32)
    if dim == 4:
        a[:, 3] = (rng.random(n) < end_rate).astype(np.float32)
    return a


def run_both(envs_a, envs_b, steps: int, seed: int, dim: int, end_rate: float = 0.0) -> dict:
    """Step two vector envs with the same actions; assert every output equal; count what happened."""
    assert_same(envs_a.reset(seed=seed), envs_b.reset(seed=seed), "reset")
    rng = np.random.default_rng(seed)
    seen = {"ends": 0, "resets": 0, "end_actions": set()}
    for t in range(steps):
        actions = random_actions(rng, envs_a.num_envs, dim, end_rate)
        out_a, out_b = envs_a.step(actions), envs_b.step(actions.copy())
        assert_same(out_a, out_b, f"step {t}")
        _, _, term, trunc, info = out_a
        seen["ends"] += int(np.sum(term | trunc))
        seen["resets"] += int(np.sum(info["num_clicks"] == 0))
        seen["end_actions"] |= {e for e in info["end_action"] if e is not None}
    return seen


@pytest.mark.parametrize("action_mode", ["click", "full"])
def test_vector_entry_point_equals_sync_for_the_same_seeds(action_mode):
    kw = dict(SMALL, action_mode=action_mode)
    batched = gym.make_vec(vector_spec(ID), num_envs=3, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec(ID, num_envs=3, vectorization_mode="sync", **kw)
    assert isinstance(batched.unwrapped, SegVectorEnv)
    assert batched.single_observation_space == sync.single_observation_space
    assert batched.observation_space == sync.observation_space and batched.action_space == sync.action_space
    dim = batched.single_action_space.shape[0]
    seen = run_both(batched, sync, steps=14, seed=7, dim=dim, end_rate=0.3)
    assert seen["ends"] >= 3 and seen["resets"] >= 3  # several episodes, autoresets included
    if action_mode == "full":
        assert seen["end_actions"] & {"finish", "no_object"}  # the end actions were exercised
    batched.close()
    sync.close()


def test_vector_entry_point_equals_async_without_shared_memory():
    """Text observations survive the async mode only without shared memory (docs/TOOLCHAIN)."""
    batched = gym.make_vec(vector_spec(ID), num_envs=2, vectorization_mode="vector_entry_point", **SMALL)
    asynced = gym.make_vec(ID, num_envs=2, vectorization_mode="async", vector_kwargs={"shared_memory": False}, **SMALL)
    seen = run_both(batched, asynced, steps=7, seed=3, dim=3)
    assert seen["ends"] >= 2
    batched.close()
    asynced.close()


def test_batched_step_makes_one_segmenter_call():
    envs = SegVectorEnv(num_envs=4, segmenter="clicknet", **SMALL)
    envs.reset(seed=0)
    segs = [env.segmenter for env in envs.envs]
    assert all(s.model is segs[0].model for s in segs)  # spawned: one model, four image caches
    before = sum(s.decoder_calls for s in segs)
    envs.step(np.full((4, 3), 0.5, np.float32))
    assert sum(s.decoder_calls for s in segs) - before == 1


def test_time_limit_and_explicit_shorter_limit():
    envs = gym.make_vec(vector_spec(ID), num_envs=2, vectorization_mode="vector_entry_point", image_size=32,
                        max_clicks=10)
    envs.reset(seed=0)
    corner = np.tile(np.array([0.01, 0.01, 0.0], np.float32), (2, 1))  # never reaches a target
    assert [bool(envs.step(corner)[3][0]) for _ in range(10)] == [False] * 9 + [True]  # not the id's 8
    short = gym.make_vec(vector_spec(ID), num_envs=2, vectorization_mode="vector_entry_point", image_size=32,
                         max_clicks=5, max_episode_steps=2)
    short.reset(seed=0)
    assert [bool(short.step(corner)[3][1]) for _ in range(2)] == [False, True]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="num_envs"):
        SegVectorEnv(num_envs=0, **SMALL)
    envs = SegVectorEnv(num_envs=2, **SMALL)
    with pytest.raises(ValueError, match="one seed per sub-env"):
        envs.reset(seed=[1, 2, 3])
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        envs.step(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="one action per sub-env"):
        envs.step([np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match="cannot serve 2 sub-envs"):
        SegVectorEnv(num_envs=2, segmenter=GrabCutSegmenter(), **SMALL)


def test_a_malformed_action_leaves_every_sub_env_untouched():
    envs = SegVectorEnv(num_envs=2, segmenter="clicknet", **SMALL)
    envs.reset(seed=0)
    envs.step(np.full((2, 3), 0.5, np.float32))
    before = [(env.current_mask, env._num_clicks, list(env._clicks)) for env in envs.envs]
    bad = np.array([[0.2, 0.2, 1.0], [np.nan, 0.5, 1.0]], np.float32)  # sub-env 1's click is NaN
    with pytest.raises(ValueError):
        envs.step(bad)
    for env, (mask, clicks, points) in zip(envs.envs, before):
        assert env._num_clicks == clicks and env._clicks == points
        np.testing.assert_array_equal(env.current_mask, mask)


def test_partial_reset_keeps_the_others():
    envs = SegVectorEnv(num_envs=2, segmenter="clicknet", **SMALL)
    envs.reset(seed=0)
    obs, _, _, _, _ = envs.step(np.full((2, 3), 0.5, np.float32))
    again, info = envs.reset(seed=5, options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(again["overlay"][1], obs["overlay"][1])
    assert info["_num_clicks"].tolist() == [True, False] and envs.envs[1].current_mask.any() == obs["mask"][1].any()


def _shapes_images(k: int) -> list[np.ndarray]:
    from segenv.datasets import make_dataset

    ds = make_dataset("shapes", split="test")
    return [ds[i].image for i in range(k)]


def test_clicknet_predict_batch_equals_one_call_per_image():
    rng = np.random.default_rng(0)
    segs = spawn_segmenters("clicknet", 4)
    requests = []
    for seg, image in zip(segs, _shapes_images(4)):
        seg.set_image(image)
        h, w = image.shape[:2]
        pts = np.stack([rng.integers(w, size=3), rng.integers(h, size=3)], 1).astype(np.float32)
        prev = None if len(requests) % 2 else rng.normal(size=(112, 112)).astype(np.float32)  # mixed rows
        requests.append((seg, Prompt(pts, np.array([1, 0, 1]), None, prev)))
    for (seg, p), (mask, logits) in zip(requests, predict_batch(requests)):
        one_mask, one_logits = seg.predict(p.points, p.labels, p.box, p.prev_logits)
        np.testing.assert_array_equal(mask, one_mask)
        np.testing.assert_allclose(logits, one_logits, atol=1e-3)


def test_predict_batch_loops_for_other_backends():
    """GrabCut has no native batch: the base class loops, and mixed batches work too."""
    images = [im[:64, :64].copy() for im in _shapes_images(2)]
    grab = spawn_segmenters("grabcut", 2)
    net = make_segmenter("clicknet")
    for seg, im in zip(grab + [net], images + images[:1]):
        seg.set_image(im)
    prompt = Prompt(np.array([[32.0, 32.0]], np.float32), np.array([1]))
    requests = [(grab[0], prompt), (grab[1], prompt), (net, prompt)]
    results = predict_batch(requests)
    for (seg, p), (mask, _) in zip(requests, results):
        np.testing.assert_array_equal(mask, seg.predict(p.points, p.labels)[0])
    assert predict_batch([(net, prompt), (grab[0], prompt)])[1][0].shape == (64, 64)  # clicknet first, grabcut row looped


def test_sam_spawn_shares_the_model_and_keeps_its_own_image():
    """A tiny SAM spawned for two sub-envs: one set of weights, two image embeddings; each
    answers as a fresh segmenter on its own image would."""
    pytest.importorskip("torch")
    from segenv.segmenters import tiny
    from segenv.segmenters.sam import SamSegmenter

    first = SamSegmenter(model=tiny.tiny_sam(0, image_size=64), device="cpu")
    a, b = spawn_segmenters(first, 2)
    assert a is first and b.model is a.model and b.image_shape is None
    images = [im[:64, :64].copy() for im in _shapes_images(2)]
    a.set_image(images[0])
    b.set_image(images[1])
    prompt = Prompt(np.array([[20.0, 30.0]], np.float32), np.array([1]))
    fresh = SamSegmenter(model=a.model, device="cpu")
    for seg, image in ((a, images[0]), (b, images[1])):
        fresh.set_image(image)
        mask, _ = predict_batch([(seg, prompt)])[0]
        np.testing.assert_array_equal(mask, fresh.predict(prompt.points, prompt.labels)[0])
    assert a.encoder_calls == 1 and b.encoder_calls == 1


def test_run_vector_oracle_same_trajectories_as_sync():
    """The rollout harness over the batched env records what it records over the sync one."""
    from agents import OracleAgent
    from segenv.rollout import run_vector

    kw = dict(image_size=48, max_clicks=3, action_mode="full")
    trajs = {}
    for mode, spec in (("sync", ID), ("vector_entry_point", vector_spec(ID))):
        envs = gym.make_vec(spec, num_envs=2, vectorization_mode=mode, **kw)
        trajs[mode] = [t.to_dict() for t in run_vector([OracleAgent(), OracleAgent()], envs, episodes=4, seed=1)]
        envs.close()
    for t in trajs["sync"] + trajs["vector_entry_point"]:
        for step in t["steps"]:
            for timing in ("agent_seconds", "env_seconds", "segmenter_seconds"):  # wall times differ
                step.pop(timing, None)
    assert len(trajs["sync"]) == 4 and trajs["sync"] == trajs["vector_entry_point"]
