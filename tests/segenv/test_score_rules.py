"""Which mask of an episode is scored (issue #19 item 1): final, best_predicted, best_so_far."""

from __future__ import annotations

import pytest

from segenv.rollout import StepRecord, Trajectory, summarize


def _traj(initial, steps):
    """``steps``: (iou after, predicted IoU of the mask before, intersection, union)."""
    t = Trajectory("s", 0, "x", initial[0], initial_intersection=initial[1], initial_union=initial[2])
    for iou, pred, inter, union in steps:
        t.steps.append(StepRecord([1, 0.5, 0.5], iou, 0.0, False, predicted_iou=pred, intersection=inter, union=union))
    t.intersection, t.union = t.steps[-1].intersection, t.steps[-1].union
    return t


def test_scored_masks_by_hand():
    # masks: m0 (initial) .2, m1 .7, m2 .9, m3 .6; predictions are FOR the mask seen: step k sees m_k
    t = _traj((0.2, 2, 10), [(0.7, 0.1, 7, 10), (0.9, 0.8, 9, 10), (0.6, 0.95, 6, 10)])
    assert t.scored("final") == (0.6, 6, 10)
    assert t.scored("best_so_far") == (0.9, 9, 10)
    # the largest prediction (0.95) is step 3's, made on m2 (IoU .9): m2 is scored
    assert t.scored("best_predicted") == (0.9, 9, 10)
    # the first step's prediction is the maximum: the initial mask is scored
    t0 = _traj((0.2, 2, 10), [(0.7, 0.99, 7, 10), (0.9, 0.5, 9, 10)])
    assert t0.scored("best_predicted") == (0.2, 2, 10)
    # ties: the first maximum
    tie = _traj((0.2, 2, 10), [(0.7, 0.5, 7, 10), (0.9, 0.8, 9, 10), (0.6, 0.8, 6, 10)])
    assert tie.scored("best_predicted") == (0.7, 7, 10)
    # no stated IoU: the final mask
    none = _traj((0.2, 2, 10), [(0.7, None, 7, 10), (0.5, None, 5, 10)])
    assert none.scored("best_predicted") == (0.5, 5, 10)
    with pytest.raises(ValueError, match="unknown score rule"):
        t.scored("best")


def test_summarize_reports_every_rule_side_by_side():
    a = _traj((0.2, 2, 10), [(0.7, 0.1, 7, 10), (0.9, 0.8, 9, 10), (0.6, 0.95, 6, 10)])
    b = _traj((0.0, 0, 20), [(0.5, 0.3, 10, 20)])
    s = summarize([a, b], 3, score="best_predicted")
    assert s["score_rule"] == "best_predicted" and s["predicted_iou_steps"] == 4
    # a: m2 (.9, 9/10); b: its only prediction is made on the initial mask (0, 0/20)
    assert s["miou"] == pytest.approx((0.9 + 0.0) / 2) and s["ciou"] == pytest.approx(9 / 30)
    assert s["miou_by_rule"]["final"] == pytest.approx((0.6 + 0.5) / 2)
    assert s["ciou_by_rule"]["final"] == pytest.approx(16 / 30)
    assert s["miou_by_rule"]["best_so_far"] == pytest.approx((0.9 + 0.5) / 2)
    assert summarize([a, b], 3)["miou"] == s["miou_by_rule"]["final"]
    with pytest.raises(ValueError, match="unknown score rule"):
        summarize([a], 3, score="nope")
