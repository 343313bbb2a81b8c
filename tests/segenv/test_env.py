"""SegEnv: checkers, seeding, observations, rewards, bad input, vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import segenv
from segenv import BoxPrompt, Click, INVALID, SegEnv
from segenv.datasets import DatasetNotFoundError, make_dataset
from segenv.metrics import iou

PROCEDURAL = ["SegAgent-Shapes-v0", "SegAgent-ThinShapes-v0", "SegAgent-ShapesNoTarget-v0"]
REAL = [i for i in segenv.ENV_SPECS if i not in PROCEDURAL]


def small(env_id: str, **kw) -> gym.Env:
    return gym.make(env_id, image_size=64, **kw)


@pytest.mark.parametrize("env_id", PROCEDURAL)
def test_check_env_procedural(env_id):
    check_env(small(env_id).unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", REAL)
def test_check_env_real_layouts(env_id, real_data_root):
    env = small(env_id, data_root=str(real_data_root))
    assert len(env.unwrapped.dataset) >= 1
    check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", REAL)
def test_missing_data_names_the_files(env_id, tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        gym.make(env_id, data_root=str(tmp_path / "nowhere"))
    assert "nowhere" in str(err.value)


@pytest.mark.parametrize("size", [512, 448])
def test_observation_layout_and_overlay(size):
    env = gym.make("SegAgent-Shapes-v0", image_size=size)
    obs, info = env.reset(seed=3)
    assert obs["image"].shape == (size, size, 3) and obs["image"].dtype == np.uint8
    assert obs["mask"].shape == (size, size) and set(np.unique(obs["mask"])) <= {0, 255}
    assert env.observation_space.contains(obs)
    gt = info["gt_mask"]
    rows, cols = np.nonzero(gt)
    k = len(rows) // 2
    obs, reward, *_ , info = env.step(Click.from_pixel(rows[k], cols[k], *gt.shape, True))
    m = obs["mask"] > 0
    assert m.any()
    # green at alpha 0.5 exactly where the mask is on, untouched elsewhere (docs/conventions.md#overlay)
    expected = obs["image"].copy()
    expected[m] = ((obs["image"][m].astype(np.uint16) + np.array([0, 255, 0])) // 2).astype(np.uint8)
    assert np.abs(obs["overlay"].astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(obs["overlay"][~m], obs["image"][~m])
    assert isinstance(obs["text"], str) and obs["text"]


def test_reward_is_iou_gain_at_original_resolution():
    env = gym.make("SegAgent-Shapes-v0", image_size=64)
    obs, info = env.reset(seed=1)
    prev = info["iou"]
    gt = info["gt_mask"]
    rows, cols = np.nonzero(gt)
    for k, positive in [(0, True), (len(rows) // 2, True)]:
        obs, reward, term, trunc, info = env.step(Click.from_pixel(rows[k], cols[k], *gt.shape, positive))
        assert info["iou"] == pytest.approx(iou(info["pred_mask"], gt))
        assert reward == pytest.approx(info["iou"] - prev)
        assert info["pred_mask"].shape == gt.shape != (64, 64)
        prev = info["iou"]


def test_truncation_and_target():
    env = gym.make("SegAgent-Shapes-v0", image_size=64, max_clicks=2)
    env.reset(seed=0)
    assert env.step(Click(0.01, 0.01, False))[3] is False
    assert env.step(Click(0.02, 0.02, False))[3] is True
    env = gym.make("SegAgent-Shapes-v0", image_size=64, target_iou=0.5)
    obs, info = env.reset(seed=0)
    gt = info["gt_mask"]
    d = __import__("cv2").distanceTransform(gt.astype(np.uint8), __import__("cv2").DIST_L2, 5)
    r, c = np.unravel_index(np.argmax(d), d.shape)
    _, _, terminated, truncated, info = env.step(Click.from_pixel(r, c, *gt.shape, True))
    assert info["iou"] >= 0.5 and terminated and not truncated


@pytest.mark.parametrize(
    "action, match",
    [
        (np.array([np.nan, 0.5, 1.0]), "NaN"),
        (np.array([0.5, 1.5, 1.0]), "out of range"),
        (np.array([0.5, 0.5]), "shape"),
        (np.array([7, 0.5, 0.5, 0, 0]), "kind"),
        (np.array([1.5, 0.5, 0.5, 0, 0]), "kind"),
        (np.array([0.5, 0.5, 1.0, 2.0]), "e="),
        ("left", "cannot read|shape"),
    ],
)
def test_malformed_actions_raise_value_error(action, match):
    env = small("SegAgent-Shapes-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    # nothing changed: a valid step still works and counts as click 1
    assert env.step(Click(0.5, 0.5, True))[4]["num_clicks"] == 1


def test_click_validation():
    with pytest.raises(ValueError, match="out of range"):
        Click(-0.1, 0.5)
    with pytest.raises(ValueError, match="finite"):
        Click(float("inf"), 0.5)
    assert Click(1.0, 1.0).to_pixel(10, 20) == (9, 19)
    assert Click.from_pixel(3, 7, 10, 20, True).to_pixel(10, 20) == (3, 7)


def test_invalid_step_keeps_mask_and_counts():
    env = small("SegAgent-Shapes-v0", max_clicks=3)
    env.reset(seed=0)
    obs1, *_ = env.step(Click(0.5, 0.5, True))
    obs2, reward, term, trunc, info = env.step(INVALID)
    assert info["invalid"] and reward == 0.0 and info["num_clicks"] == 2
    assert np.array_equal(obs1["mask"], obs2["mask"])
    _, _, _, trunc, info = env.step(None)
    assert info["invalid"] and trunc


def test_box_first_action_and_only_first():
    env = small("SegAgent-Shapes-v0")
    obs, info = env.reset(seed=2)
    x0, y0, x1, y1 = env.unwrapped.sample.box
    h, w = info["gt_mask"].shape
    obs, reward, *_ , info = env.step(BoxPrompt.from_pixels((x0, y0, x1, y1), h, w))
    assert info["num_clicks"] == 0 and info["iou"] > 0.5
    with pytest.raises(ValueError, match="first action"):
        env.step(BoxPrompt(0.1, 0.1, 0.5, 0.5))
    # the long array form of a box is accepted as a first action too
    env.reset(seed=2)
    env.step(np.array([2, x0 / w, y0 / h, x1 / w, y1 / h]))


@pytest.mark.parametrize("state", ["box", "points"])
def test_initial_states_give_a_mask(state):
    env = small("SegAgent-Shapes-v0", initial_state=state)
    obs, info = env.reset(seed=4)
    assert info["iou"] > 0.0 and (obs["mask"] > 0).any()
    assert info["num_clicks"] == 0 and info["clicks"] == []


def test_same_seed_same_trajectory_bit_for_bit():
    from agents import OracleAgent
    from segenv.rollout import run_episodes

    def run():
        env = small("SegAgent-Shapes-v0", initial_state="points", max_clicks=4)
        trajs = run_episodes(OracleAgent(), env, 4, seed=7, progress=False)
        return [(t.sample_id, [s.action for s in t.steps], t.ious) for t in trajs]

    assert run() == run()
    env_a, env_b = small("SegAgent-Shapes-v0"), small("SegAgent-Shapes-v0")
    a, b = env_a.reset(seed=11)[0], env_b.reset(seed=11)[0]
    assert a["text"] == b["text"] and np.array_equal(a["image"], b["image"])


def test_fresh_arrays_every_call():
    env = small("SegAgent-Shapes-v0")
    o1, i1 = env.reset(seed=0)
    o2, _, _, _, i2 = env.step(INVALID)
    for key in ("image", "overlay", "mask"):
        assert not np.shares_memory(o1[key], o2[key])
    assert not np.shares_memory(i1["gt_mask"], i2["gt_mask"])


def test_render_modes_without_display():
    env = gym.make("SegAgent-Shapes-v0", image_size=64, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(Click(0.5, 0.5, True))
    frame = env.render()
    assert frame.shape == (64, 64, 3)
    gym.make("SegAgent-Shapes-v0", render_mode="human")  # constructing needs no display
    with pytest.raises(ValueError, match="render_mode"):
        gym.make("SegAgent-Shapes-v0", render_mode="video")


def test_reset_index_option_and_bad_index():
    env = small("SegAgent-Shapes-v0")
    ds = env.unwrapped.dataset
    _, info = env.reset(options={"index": 5})
    assert info["sample_id"] == ds[5].id
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"index": len(ds)})


def test_unknown_names_are_clear():
    with pytest.raises(KeyError, match="registered"):
        gym.make("SegAgent-Shapes-v0", segmenter="nope")
    with pytest.raises(KeyError, match="registered"):
        make_dataset("nope")
    with pytest.raises(ValueError, match="initial_state"):
        gym.make("SegAgent-Shapes-v0", initial_state="full")


def test_async_vector_env_keeps_text():
    envs = gym.make_vec(
        "SegAgent-Shapes-v0", num_envs=2, vectorization_mode="async", vector_kwargs={"shared_memory": False}, image_size=32
    )
    try:
        obs, infos = envs.reset(seed=[0, 1])
        singles = [gym.make("SegAgent-Shapes-v0", image_size=32).reset(seed=s)[0]["text"] for s in (0, 1)]
        assert list(obs["text"]) == singles
        obs, rewards, *_ = envs.step(np.array([[0.5, 0.5, 1.0], [0.2, 0.2, 1.0]], np.float32))
        assert rewards.shape == (2,)
    finally:
        envs.close()


def test_run_vector_matches_single_env_oracle():
    from agents import OracleAgent
    from segenv.rollout import run_vector

    envs = gym.make_vec("SegAgent-Shapes-v0", num_envs=2, vectorization_mode="sync", image_size=64, max_clicks=2)
    trajs = run_vector([OracleAgent(), OracleAgent()], envs, episodes=3, seed=0)
    assert len(trajs) == 3
    envs.close()
    single = small("SegAgent-Shapes-v0", max_clicks=2)
    from segenv.rollout import run_episode

    refs = []
    for t in trajs:
        ref = run_episode(OracleAgent(), single, index=t.sample_index)
        assert t.ious == ref.ious and t.stopped == ref.stopped
        assert (t.intersection, t.union) == (ref.intersection, ref.union)
        assert [(s.intersection, s.union) for s in t.steps] == [(s.intersection, s.union) for s in ref.steps]
        refs.append(ref)
    # the same summary, cIoU included (a vector run records intersection and union too: issue #19)
    from segenv.rollout import summarize

    a, b = summarize(trajs, 2), summarize(refs, 2)
    assert trajs[0].union > 0 and a["ciou"] == b["ciou"] and a["miou_by_rule"] == b["miou_by_rule"]


def test_segmenter_receives_integer_pixel_indices():
    """Click -> pixel (row, col) = floor(y*H), floor(x*W); the segmenter gets (x, y) = (col, row), no
    half-pixel offset, as SegAgent hands points to segment-anything's SamPredictor."""
    from segenv.segmenters import SegmenterBase

    class Recorder(SegmenterBase):
        name = "recorder"

        def set_image(self, image):
            self._check_image(image)

        def predict(self, points, labels, box=None, prev_logits=None):
            self.points = np.asarray(points).copy()
            return np.zeros(self.image_shape, bool), None

    seg = Recorder()
    env = SegEnv(segmenter=seg, image_size=32, dataset_kwargs={"length": 2})
    env.reset(seed=0, options={"index": 0})
    h, w = env.sample.mask.shape  # 224 x 224
    env.step(Click(0.5, 0.25, True))  # pixel (56, 112)
    env.step(Click(0.999, 0.0, False))  # pixel (0, 223)
    assert seg.points.tolist() == [[112.0, 56.0], [223.0, 0.0]]
    assert (h, w) == (224, 224)


def test_box_step_counts_the_box_as_step_one():
    """#19 item 5: with box_step the GT box is the first of max_clicks steps (SegAgent's loop); the
    harness records it as step 1 from the empty mask; without it the box is free."""
    from agents import OracleAgent
    from segenv.rollout import run_episode, summarize

    free = run_episode(OracleAgent(), small("SegAgent-Shapes-v0", initial_state="box", max_clicks=3), index=1, seed=0)
    env = small("SegAgent-Shapes-v0", initial_state="box", max_clicks=3, box_step=True)
    counted = run_episode(OracleAgent(), env, index=1, seed=0)
    box = counted.steps[0]
    assert box.action[0] == 2 and counted.initial_iou == 0.0 and box.iou == pytest.approx(free.initial_iou)
    assert box.reward == pytest.approx(box.iou) and counted.initial_union > 0 and counted.initial_intersection == 0
    clicks = [s for s in counted.steps[1:] if s.action[0] in (0, 1)]
    assert len(clicks) <= 2 and len([s for s in free.steps if s.action[0] in (0, 1)]) <= 3
    assert summarize([counted], 3)["miou_per_click"][0] == pytest.approx(box.iou)
    assert [s.iou for s in counted.steps[1:]] == [s.iou for s in free.steps[: len(counted.steps) - 1]]
    with pytest.raises(ValueError, match="max_clicks must be >= 2"):
        small("SegAgent-Shapes-v0", initial_state="box", max_clicks=1, box_step=True)
