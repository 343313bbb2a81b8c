"""SegEnv.preview and the Lookahead: candidate masks without stepping, without the ground truth."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401
from segenv.actions import Click, Finish, NoObject
from segenv.lookahead import Lookahead, attach_lookahead
from segenv.rollout import run_episode, run_vector
from segenv.segmenters.base import SegmenterBase


class CountingSegmenter(SegmenterBase):
    """A disk of radius 6 px around every positive point, minus disks around negative ones; counts calls."""

    name = "counting"

    def __init__(self) -> None:
        self.predict_calls = 0
        self.many_calls: list[int] = []

    def set_image(self, image):
        self._check_image(image)
        self._shape = image.shape[:2]

    def predict(self, points, labels, box=None, prev_logits=None):
        points, labels, box = self._check_prompt(points, labels, box)
        self.predict_calls += 1
        yy, xx = np.mgrid[: self._shape[0], : self._shape[1]]
        mask = np.zeros(self._shape, bool)
        for (x, y), lab in zip(points, labels):
            disk = (yy - y) ** 2 + (xx - x) ** 2 <= 36
            mask = mask | disk if lab else mask & ~disk
        return mask, None

    def predict_many(self, prompts):
        self.many_calls.append(len(prompts))
        return [self.predict(p.points, p.labels, p.box, p.prev_logits) for p in prompts]


def _env(**kw):
    seg = CountingSegmenter()
    env = gym.make("SegAgent-Shapes-v0", segmenter=seg, image_size=64, max_clicks=4, disable_env_checker=True, **kw)
    return env, seg


def _target_click(info) -> Click:
    gt = info["gt_mask"]
    ys, xs = np.nonzero(gt)
    h, w = gt.shape
    i = len(ys) // 2
    return Click.from_pixel(int(ys[i]), int(xs[i]), h, w, True)


def test_preview_changes_nothing_and_step_reuses_the_previewed_mask():
    env, seg = _env()
    obs, info = env.reset(seed=0, options={"index": 2})
    base = env.unwrapped
    hit = _target_click(info)
    actions = [hit, Click(0.02, 0.02, True), Finish(), NoObject(), None]
    previews = base.preview(actions)
    assert seg.many_calls == [2]  # the two clicks, one batched call; end actions need none
    assert len(previews) == 5 and all(set(p) == {"image", "overlay", "mask", "text"} for p in previews)  # no GT, no IoU
    assert previews[0]["mask"].any() and previews[0]["mask"].dtype == np.uint8
    np.testing.assert_array_equal(previews[2]["overlay"], obs["overlay"])  # Finish: the current mask
    np.testing.assert_array_equal(previews[4]["mask"], obs["mask"])  # an invalid step keeps it too
    assert not previews[3]["mask"].any()  # NoObject: the empty mask
    # nothing changed: the episode is where it was
    assert base.current_mask.sum() == info["pred_mask"].sum() and base._num_clicks == 0 and base._points == []
    calls = seg.predict_calls
    obs2, reward, *_ , info2 = env.step(hit)
    assert seg.predict_calls == calls  # the previewed mask is reused, no second segmenter call
    np.testing.assert_array_equal(obs2["overlay"], previews[0]["overlay"])
    np.testing.assert_array_equal(obs2["mask"], previews[0]["mask"])
    # ... and it is what a plain step gives
    env2, _ = _env()
    env2.reset(seed=0, options={"index": 2})
    obs3, reward3, *_, info3 = env2.step(hit)
    np.testing.assert_array_equal(obs3["mask"], obs2["mask"])
    assert reward3 == reward and info3["iou"] == info2["iou"]
    # the cache is gone once the state changed: a new preview segments again, from the new prompts
    again = base.preview([Click(0.02, 0.02, True)])
    assert seg.many_calls == [2, 1]
    assert (again[0]["mask"] >= obs2["mask"]).all()  # the new disk adds to the clicked one


def test_preview_rejects_malformed_actions_before_segmenting():
    env, seg = _env()
    env.reset(seed=0, options={"index": 0})
    with pytest.raises(ValueError):
        env.unwrapped.preview([Click(0.5, 0.5, True), np.array([np.nan, 0.5, 1.0])])
    assert seg.many_calls == [] and env.unwrapped._num_clicks == 0


def test_lookahead_is_attached_by_the_harness_and_refused_by_run_vector():
    class Planner:
        needs_gt = False

        def __init__(self):
            self.lookahead = None
            self.seen_keys: list = []

        def attach_lookahead(self, lookahead):
            self.lookahead = lookahead

        def reset(self, obs, info):
            pass

        def act(self, obs, info):
            self.seen_keys.append(sorted(info))
            previews = self.lookahead.preview([Click(0.5, 0.5, True), Click(0.25, 0.25, True)])
            best = int(np.argmax([p["mask"].sum() for p in previews]))
            return [Click(0.5, 0.5, True), Click(0.25, 0.25, True)][best]

    env, seg = _env()
    planner = Planner()
    traj = run_episode(planner, env, seed=0, index=1)
    assert isinstance(planner.lookahead, Lookahead) and planner.lookahead.calls == len(traj.steps) == 4
    assert all("gt_mask" not in keys for keys in planner.seen_keys)
    assert not attach_lookahead(object(), env.unwrapped)
    with pytest.raises(TypeError, match="preview"):
        Lookahead(object())
    envs = gym.make_vec("SegAgent-Shapes-v0", num_envs=2, vectorization_mode="sync", image_size=64)
    with pytest.raises(ValueError, match="run_episode"):
        run_vector([Planner(), Planner()], envs, 2)
    envs.close()
