"""Finish / NoObject through the env and the harness; action modes; reward shaping; atomic steps."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import segenv  # noqa: F401  (registers the env ids)
from segenv.actions import INVALID, NO_OBJECT, STOP, BoxPrompt, Click, Finish, NoObject
from segenv.datasets import make_dataset
from segenv.rollout import StepRecord, Trajectory, run_episode, run_vector, summarize


class DiskSegmenter:
    """Deterministic and fast: the union of radius-``r`` disks around positive clicks minus the
    disks around negative ones; ``fail_next`` makes the next ``predict`` raise ValueError."""

    def __init__(self, radius: int = 12) -> None:
        self.radius, self.fail_next, self.calls = radius, False, 0

    def set_image(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]

    def predict(self, points, labels, box=None, prev_logits=None):
        self.calls += 1
        if self.fail_next:
            self.fail_next = False
            raise ValueError("segmenter refused the prompt")
        yy, xx = np.mgrid[: self.shape[0], : self.shape[1]]
        mask = np.zeros(self.shape, bool)
        for (x, y), label in sorted(zip(map(tuple, points), labels), key=lambda p: p[1], reverse=True):
            disk = (xx - x) ** 2 + (yy - y) ** 2 <= self.radius**2  # points are pixel indices
            mask = mask | disk if label else mask & ~disk
        if box is not None:
            x0, y0, x1, y1 = np.asarray(box).round().astype(int)
            mask[y0:y1, x0:x1] = True
        return mask, None


def make(env_id: str = "SegAgent-Shapes-v0", **kw) -> gym.Env:
    kw.setdefault("segmenter", DiskSegmenter())
    return gym.make(env_id, image_size=64, **kw).unwrapped


def centre_click(info: dict, positive: bool = True) -> Click:
    rows, cols = np.nonzero(info["gt_mask"])
    k = len(rows) // 2
    return Click.from_pixel(rows[k], cols[k], *info["gt_mask"].shape, positive)


# ------------------------------------------------------------------ spaces
def test_click_mode_is_the_old_box3_form():
    env = make()
    assert env.action_space == gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    obs, info = env.reset(seed=0)
    click = centre_click(info)
    _, reward, term, trunc, info = env.step(np.array([click.x, click.y, 1.0], np.float32))
    assert info["num_clicks"] == 1 and info["iou"] > 0 and reward == pytest.approx(info["iou"])
    assert not term and info["end_action"] is None
    env.action_space.seed(0)
    for _ in range(3):
        *_, info = env.step(env.action_space.sample())
    assert info["num_clicks"] == 4 and info["end_action"] is None  # random Box(3) samples are only clicks


@pytest.mark.parametrize("mode", ["click", "full"])
def test_check_env_both_modes(mode):
    env = make(action_mode=mode, segmenter="grabcut")
    assert env.action_space.shape == ((3,) if mode == "click" else (4,))
    check_env(env, skip_render_check=True)


def test_full_mode_reaches_both_end_actions_by_sampling():
    env = make(action_mode="full", max_clicks=50)
    env.action_space.seed(3)
    seen = set()
    for episode in range(30):
        env.reset(seed=episode)
        done = False
        while not done:
            *_, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
        seen.add(info["end_action"])
    assert {"finish", "no_object"} <= seen


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="action_mode"):
        make(action_mode="discrete")
    for bad in (float("nan"), "0.1", True, None):
        with pytest.raises(ValueError, match="step_cost"):
            make(step_cost=bad)
        with pytest.raises(ValueError, match="finish_bonus"):
            make(finish_bonus=bad)


# ------------------------------------------------------------------ Finish
@pytest.mark.parametrize("spelling", [Finish(), STOP, np.array([3, 0, 0, 0, 0]), np.array([0.5, 0.5, 1.0, 1.0])])
def test_finish_keeps_the_mask_and_ends(spelling):
    env = make(max_clicks=3)
    seg = env.segmenter
    _, info = env.reset(seed=1)
    obs1, _, _, _, info1 = env.step(centre_click(info))
    calls = seg.calls
    obs2, reward, term, trunc, info2 = env.step(spelling)
    assert term and not trunc and reward == 0.0
    assert info2["end_action"] == "finish" and not info2["invalid"]
    assert np.array_equal(info2["pred_mask"], info1["pred_mask"]) and np.array_equal(obs2["mask"], obs1["mask"])
    assert info2["iou"] == info1["iou"] and info2["num_clicks"] == 1  # not a click
    assert seg.calls == calls  # no segmenter call


def test_finish_as_first_action_keeps_the_initial_mask():
    env = make(initial_state="box")
    obs0, info0 = env.reset(seed=2)
    obs, reward, term, _, info = env.step(STOP)
    assert term and reward == 0.0 and info["iou"] == info0["iou"] > 0
    assert np.array_equal(obs["mask"], obs0["mask"])


# ------------------------------------------------------------------ NoObject
def test_no_object_on_a_real_target_empties_the_mask():
    env = make()
    _, info = env.reset(seed=1)
    _, gain, *_ = env.step(centre_click(info))
    obs, reward, term, trunc, info2 = env.step(NoObject())
    assert term and not trunc and info2["end_action"] == "no_object"
    assert not info2["pred_mask"].any() and not obs["mask"].any()
    assert info2["iou"] == 0.0 and reward == pytest.approx(-gain)
    assert info2["num_clicks"] == 1


@pytest.mark.parametrize("initial_state", ["empty", "box"])
def test_no_object_on_an_empty_target_scores_one(initial_state):
    env = make(dataset_kwargs={"no_target_fraction": 1.0}, initial_state=initial_state)
    _, info = env.reset(seed=0)
    assert not info["gt_mask"].any()
    before = info["iou"]
    assert before == (1.0 if initial_state == "empty" else 0.0)  # the box state starts from a full box
    obs, reward, term, _, info = env.step(NO_OBJECT)
    assert term and info["iou"] == 1.0 and reward == pytest.approx(1.0 - before)
    assert not obs["mask"].any() and info["end_action"] == "no_object"


# ------------------------------------------------------------------ rewards
def test_default_return_is_final_minus_initial_iou():
    env = make(initial_state="points", max_clicks=5)
    _, info = env.reset(seed=4)
    initial, total = info["iou"], 0.0
    for action in (centre_click(info), Click(0.02, 0.02, False), INVALID, Click(0.5, 0.5, True), STOP):
        _, reward, term, trunc, info = env.step(action)
        total += reward
    assert term and total == pytest.approx(info["iou"] - initial)


@pytest.mark.parametrize("end", [STOP, NO_OBJECT, None])
def test_step_cost_and_finish_bonus_arithmetic(end):
    cost, bonus = 0.05, 0.2
    shaped, plain = make(step_cost=cost, finish_bonus=bonus, max_clicks=3), make(max_clicks=3)
    actions = [Click(0.5, 0.5, True), INVALID, Click(0.1, 0.1, False)] if end is None else [Click(0.5, 0.5, True), INVALID, end]
    rewards = {}
    for name, env in (("shaped", shaped), ("plain", plain)):
        env.reset(seed=5)
        rewards[name] = [env.step(a)[1] for a in actions]
    n_clicks = 3 if end is None else 2
    expected = [r - cost for r in rewards["plain"][:n_clicks]] + ([] if end is None else [rewards["plain"][-1] + bonus])
    assert rewards["shaped"] == pytest.approx(expected)
    assert sum(rewards["shaped"]) == pytest.approx(sum(rewards["plain"]) - cost * n_clicks + (0 if end is None else bonus))


def test_box_step_is_charged_but_not_a_click():
    env = make(step_cost=0.1)
    _, info = env.reset(seed=2)
    before, (h, w) = info["iou"], info["gt_mask"].shape
    _, reward, *_, info = env.step(BoxPrompt.from_pixels(env.sample.box, h, w))
    assert info["num_clicks"] == 0 and reward == pytest.approx(info["iou"] - before - 0.1)


# ------------------------------------------------------------------ nothing changes on a bad step
def _state(env) -> tuple:
    return (env._num_clicks, list(env._points), list(env._labels), list(env._clicks), env._box, env._iou,
            env._mask.copy().tobytes(), env._end_action)


@pytest.mark.parametrize(
    "bad",
    [
        np.array([np.nan, 0.5, 1.0]),
        np.array([0.5, 1.5, 1.0]),
        np.array([0.5, 0.5, 2.0]),
        np.array([0.5, 0.5, 1.0, 7.0]),
        np.array([9, 0.5, 0.5, 0, 0]),
        np.array([2, 0.5, 0.5, 0.5, 0.9]),  # zero-width box
        np.array([0.5, 0.5, 1.0]) + 0j,
        ["0.5", "0.5", "1"],
        "left",
        [[0.5, 0.5, 1.0]],
    ],
)
def test_malformed_action_changes_nothing(bad):
    env = make()
    _, info = env.reset(seed=0)
    env.step(centre_click(info))
    before = _state(env)
    with pytest.raises(ValueError):
        env.step(bad)
    assert _state(env) == before


def test_box_after_a_click_changes_nothing():
    env = make()
    _, info = env.reset(seed=0)
    env.step(centre_click(info))
    before = _state(env)
    with pytest.raises(ValueError, match="first action"):
        env.step(BoxPrompt(0.1, 0.1, 0.5, 0.5))
    assert _state(env) == before


def test_segmenter_error_changes_nothing_and_the_harness_records_an_invalid_step():
    env = make(max_clicks=4)
    _, info = env.reset(seed=0)
    env.step(centre_click(info))
    before = _state(env)
    env.segmenter.fail_next = True
    with pytest.raises(ValueError, match="refused"):
        env.step(Click(0.1, 0.1, False))
    assert _state(env) == before

    class FailsOnce:
        needs_gt = True

        def reset(self, obs, info):
            self.k = 0

        def act(self, obs, info):
            self.k += 1
            if self.k == 2:
                env.segmenter.fail_next = True
            return STOP if self.k == 3 else centre_click(info)

    traj = run_episode(FailsOnce(), env, index=0)
    assert [s.invalid for s in traj.steps] == [False, True, False]
    assert traj.steps[1].action is None and "refused" in traj.steps[1].error
    assert traj.steps[1].iou == traj.steps[0].iou  # the recorded invalid step kept the mask
    assert len(env._clicks) == len(env._points) == 1  # the failed click was never stored


# ------------------------------------------------------------------ harness
class ClicksThen:
    """Clicks the target's centre ``n`` times, then returns ``end``."""

    needs_gt = True

    def __init__(self, n: int, end):
        self.n, self.end = n, end

    def reset(self, obs, info):
        self.k = 0

    def act(self, obs, info):
        self.k += 1
        return self.end if self.k > self.n else centre_click(info, positive=True)


@pytest.mark.parametrize("end, name", [(STOP, "finish"), (NO_OBJECT, "no_object")])
def test_trajectory_records_the_end_action(end, name):
    env = make(max_clicks=5)
    traj = run_episode(ClicksThen(2, end), env, index=3)
    assert len(traj.steps) == 3 and traj.clicks_used == 2
    assert traj.steps[-1].action[0] == (3 if name == "finish" else 4)
    assert traj.end_action == name and traj.stopped
    assert traj.ious[-1] == (traj.ious[-2] if name == "finish" else 0.0)
    budget = run_episode(ClicksThen(99, end), env, index=3)
    assert budget.end_action is None and not budget.stopped and budget.clicks_used == 5


def test_summarize_stopping_metrics_by_hand():
    def traj(initial, ious, end, empty=False, kinds=None):
        kinds = kinds or [1] * len(ious)
        t = Trajectory("s", 0, "t", initial, empty_target=empty, end_action=end, stopped=end in ("finish", "no_object"))
        t.steps = [StepRecord([k, 0.5, 0.5, 0, 0], v, 0.0, False) for k, v in zip(kinds, ious)]
        return t

    trajs = [
        traj(0.0, [0.5, 0.9, 0.9], "finish", kinds=[1, 1, 3]),  # finished at its best
        traj(0.0, [0.8, 0.7, 0.7], "finish", kinds=[1, 0, 3]),  # best 0.8, kept 0.7: not at best
        traj(0.0, [0.95, 0.94, 0.94], "finish", kinds=[1, 0, 3]),  # within 0.02 of its best
        traj(1.0, [1.0], "no_object", empty=True, kinds=[4]),  # right no-object answer
        traj(1.0, [0.0], None, empty=True, kinds=[1]),  # clicked on a no-target item
        traj(0.0, [0.6, 0.0], "no_object", kinds=[1, 4]),  # false no-object
        traj(0.0, [0.3, 0.4], None),  # budget ran out
    ]
    s = summarize(trajs, max_clicks=3)
    assert s["finish_rate"] == pytest.approx(3 / 7)
    assert s["stop_at_best_rate"] == pytest.approx(2 / 3)
    assert s["no_target_items"] == 2 and s["no_target_accuracy"] == pytest.approx(0.5)
    assert s["false_no_object_rate"] == pytest.approx(1 / 5)
    assert s["clicks_used"] == pytest.approx((2 + 2 + 2 + 0 + 1 + 1 + 2) / 7)
    assert s["steps"] == 10  # end steps are not clicks
    assert s["miou"] == pytest.approx(np.mean([0.9, 0.7, 0.94, 1.0, 0.0, 0.0, 0.4]))
    none = summarize([traj(0.0, [0.3], None)], max_clicks=3)
    assert np.isnan(none["stop_at_best_rate"]) and np.isnan(none["no_target_accuracy"])


def test_run_vector_click_mode_refuses_no_object():
    envs = gym.make_vec("SegAgent-Shapes-v0", num_envs=1, vectorization_mode="sync", image_size=64)
    with pytest.raises(ValueError, match="full"):
        run_vector([ClicksThen(0, NO_OBJECT)], envs, episodes=1)
    envs.close()


def test_no_target_env_id():
    env = gym.make("SegAgent-ShapesNoTarget-v0", image_size=64)
    assert env.unwrapped.action_mode == "full" and env.action_space.shape == (4,)
    ds = env.unwrapped.dataset
    assert ds.no_target_fraction == 0.1
    assert make_dataset("shapes", split="test", no_target_fraction=0.1)[7].id == ds[7].id
