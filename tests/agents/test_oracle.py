"""The oracle ends episodes itself: NoObject on empty targets, Finish when done or at finish_iou."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401
from agents import OracleAgent
from segenv.actions import NO_OBJECT, STOP, Click
from segenv.rollout import run_episode, run_episodes, run_vector, summarize


def env(**kw):
    return gym.make("SegAgent-Shapes-v0", image_size=64, **kw)


def test_no_object_on_an_empty_target_only():
    e = env(dataset_kwargs={"no_target_fraction": 0.5}, action_mode="full")
    trajs = run_episodes(OracleAgent(), e, 12, progress=False)
    empty = [t for t in trajs if t.empty_target]
    assert empty and len(empty) < len(trajs)
    assert all(t.end_action == "no_object" and t.clicks_used == 0 and t.final_iou == 1.0 for t in empty)
    assert not any(t.end_action == "no_object" for t in trajs if not t.empty_target)
    s = summarize(trajs, max_clicks=7)
    assert s["no_target_accuracy"] == 1.0 and s["false_no_object_rate"] == 0.0


def test_finish_when_nothing_is_left_to_fix():
    agent = OracleAgent()
    gt = np.zeros((8, 8), bool)
    gt[2:5, 2:5] = True
    info = {"gt_mask": gt, "pred_mask": gt.copy(), "iou": 1.0, "sample_id": "x"}
    agent.reset({}, info)
    assert agent.act({}, info) is STOP
    info["pred_mask"] = np.zeros_like(gt)
    info["iou"] = 0.0
    assert isinstance(agent.act({}, info), Click)
    info["gt_mask"] = np.zeros_like(gt)
    assert agent.act({}, info) is NO_OBJECT
    ignore = np.zeros_like(gt)
    ignore[2:5, 2:5] = True  # a target that lies wholly in the ignore band counts as empty too
    assert agent.act({}, {**info, "gt_mask": gt, "gt_ignore": ignore}) is NO_OBJECT


def test_finish_iou_stops_early_and_saves_clicks():
    e = env(max_clicks=7)
    full = run_episodes(OracleAgent(), e, 8, progress=False)
    early = run_episodes(OracleAgent(finish_iou=0.5), e, 8, progress=False)
    finished = 0
    for f, t in zip(full, early):
        k = t.clicks_used
        assert t.ious[:k] == f.ious[:k]  # the same clicks up to the stop
        if t.end_action == "finish":
            finished += 1
            assert t.final_iou >= 0.5 and t.steps[-1].action[0] == 3
            assert all(v < 0.5 for v in [t.initial_iou, *t.ious[: k - 1]])  # at the first mask >= 0.5
    assert finished >= 4
    assert sum(t.clicks_used for t in early) < sum(t.clicks_used for t in full)
    with pytest.raises(ValueError, match="finish_iou"):
        OracleAgent(finish_iou=1.5)


def test_random_tie_break_is_the_same_in_every_process():
    """Seeded by CRC-32 of the sample id, not Python's per-process hash(): PYTHONHASHSEED must not matter."""
    code = (
        "import numpy as np\n"
        "from agents import OracleAgent\n"
        "gt = np.zeros((20, 20), bool); gt[4:12, 4:12] = True  # four tied deepest pixels\n"
        "out = []\n"
        "for k in range(20):\n"
        "    a = OracleAgent(tie_break='random', seed=3)\n"
        "    info = {'gt_mask': gt, 'pred_mask': np.zeros_like(gt), 'iou': 0.0, 'sample_id': f's/{k}'}\n"
        "    a.reset({}, info)\n"
        "    c = a.act({}, info)\n"
        "    out.append((c.x, c.y))\n"
        "print(len(set(out)))\n"
        "print(out)\n"
    )
    outs = []
    for hash_seed in ("1", "2"):
        envvars = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
        outs.append(subprocess.run([sys.executable, "-c", code], env=envvars, capture_output=True, text=True, check=True).stdout)
    assert outs[0] == outs[1]
    assert int(outs[0].splitlines()[0]) > 1  # there are ties, broken differently across sample ids


def test_run_vector_full_mode_matches_single_env():
    kw = dict(image_size=64, max_clicks=3, action_mode="full", dataset_kwargs={"no_target_fraction": 0.5})
    envs = gym.make_vec("SegAgent-Shapes-v0", num_envs=2, vectorization_mode="sync", **kw)
    agents = [OracleAgent(finish_iou=0.8), OracleAgent(finish_iou=0.8)]
    trajs = run_vector(agents, envs, episodes=6, seed=0)
    envs.close()
    single = gym.make("SegAgent-Shapes-v0", **kw)
    ends = set()
    for t in trajs:
        ref = run_episode(OracleAgent(finish_iou=0.8), single, index=t.sample_index)
        assert t.ious == ref.ious and t.end_action == ref.end_action and t.empty_target == ref.empty_target
        np.testing.assert_allclose([s.action for s in t.steps], [s.action for s in ref.steps], atol=1e-6)
        assert (t.intersection, t.union) == (ref.intersection, ref.union)
        ends.add(t.end_action)
    assert "no_object" in ends


def test_cell_oracle_clicks_cell_centres_with_the_oracles_sign_and_stops_on_a_perfect_mask():
    """``make_agent("cell-oracle", grid=g)``: the oracle's next click moved to a ``g x g`` cell centre
    (the ceiling of a pointer-grid policy with perfect labels)."""
    from agents.registry import make_agent

    grid = 8
    agent = make_agent("cell-oracle", grid=grid)
    gt = np.zeros((64, 64), bool)
    gt[8:40, 8:40] = True
    pred = np.zeros_like(gt)
    agent.reset({}, {"iou": 0.0})
    click = agent.act({}, {"gt_mask": gt, "pred_mask": pred, "iou": 0.0})
    centres = {(k + 0.5) / grid for k in range(grid)}
    assert click.positive and click.x in centres and click.y in centres
    assert gt[int(click.y * 64), int(click.x * 64)]  # the centre lies inside the missing object
    spill = gt.copy()
    spill[8:40, 40:64] = True  # a wide false positive to the right
    click = agent.act({}, {"gt_mask": gt, "pred_mask": spill, "iou": 0.57})
    assert not click.positive and click.x in centres and click.y in centres
    assert spill[int(click.y * 64), int(click.x * 64)] and not gt[int(click.y * 64), int(click.x * 64)]
    assert agent.act({}, {"gt_mask": gt, "pred_mask": gt.copy(), "iou": 1.0}) is STOP
