"""The click simulator and metrics follow RITM's conventions (docs/conventions.md#clicker, #metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from segenv.clicker import Clicker, next_click, padded_distance
from segenv.metrics import carry_forward, ciou, intersection_union, iou, mean_noc, miou_per_click, noc, nof


def test_border_counts_as_boundary():
    full = np.ones((5, 7), bool)
    d = padded_distance(full)
    assert d[0, 0] == 1.0 and d[2, 3] == 3.0  # distance to the padded ring, not to nothing


def test_first_click_is_centre_of_object_and_positive():
    gt = np.zeros((11, 11), bool)
    gt[2:9, 2:9] = True
    c = next_click(gt, np.zeros_like(gt))
    assert (c.row, c.col, c.positive) == (5, 5, True)


def test_tie_gives_negative_and_raster_order():
    gt = np.zeros((9, 9), bool)
    pred = np.zeros((9, 9), bool)
    gt[1:4, 1:4] = True  # fn blob: max distance 2
    pred[5:8, 5:8] = True  # fp blob of the same size: tie
    c = next_click(gt, pred)
    assert not c.positive and (c.row, c.col) == (6, 6)
    # two equal fn maxima: the first in raster order wins
    gt2 = np.zeros((9, 9), bool)
    gt2[1:4, 5:8] = True
    gt2[5:8, 1:4] = True
    c2 = next_click(gt2, np.zeros_like(gt2))
    assert (c2.row, c2.col) == (2, 6)


def test_never_the_same_pixel_twice_and_none_when_perfect():
    gt = np.zeros((6, 6), bool)
    gt[2:4, 2:4] = True
    clicker = Clicker(gt)
    seen = set()
    for _ in range(4):
        c = clicker.step(np.zeros_like(gt))
        assert (c.row, c.col) not in seen
        seen.add((c.row, c.col))
    assert next_click(gt, gt.copy()) is None


def test_ignore_pixels_are_never_clicked():
    gt = np.zeros((9, 9), bool)
    gt[2:7, 2:7] = True
    ignore = np.zeros_like(gt)
    ignore[3:6, 3:6] = True
    c = next_click(gt, np.zeros_like(gt), ignore=ignore)
    assert not ignore[c.row, c.col]


def test_random_tie_break_is_seeded():
    gt = np.zeros((9, 9), bool)
    gt[1:4, 1:8] = True
    a = next_click(gt, np.zeros_like(gt), tie_break="random", rng=np.random.default_rng(0))
    b = next_click(gt, np.zeros_like(gt), tie_break="random", rng=np.random.default_rng(0))
    assert a == b
    with pytest.raises(ValueError, match="rng"):
        next_click(gt, np.zeros_like(gt), tie_break="random")


def test_iou_with_ignore_and_empty_union():
    gt = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    assert iou(pred, gt) == pytest.approx(1 / 3)
    ignore = np.array([[0, 0, 1, 0]], bool)
    assert intersection_union(pred, gt, ignore) == (1, 2)
    assert iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    assert ciou([1, 3], [2, 4]) == pytest.approx(4 / 6)


def test_noc_nof_and_carry_forward():
    assert noc([0.5, 0.86, 0.91], 0.85) == 2
    assert noc([0.5, 0.86, 0.91], 0.90) == 3
    assert noc([0.1, 0.2], 0.9, max_clicks=20) == 20
    assert noc([0.1] * 19 + [0.95], 0.9, max_clicks=20) == 20  # reached at the last click: counts as a failure
    assert nof([[0.1] * 19 + [0.95], [0.95]], 0.9) == 1
    assert mean_noc([[0.95], [0.1, 0.9]], 0.9) == 1.5
    assert carry_forward([0.3, 0.6], 4).tolist() == [0.3, 0.6, 0.6, 0.6]
    np.testing.assert_allclose(miou_per_click([[0.2], [0.4, 0.8]], 2), [0.3, 0.5])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_oracle_click_lands_on_an_error_pixel(seed):
    rng = np.random.default_rng(seed)
    gt = rng.random((12, 12)) < 0.4
    pred = rng.random((12, 12)) < 0.4
    c = next_click(gt, pred)
    if c is None:
        assert np.array_equal(gt, pred)
    else:
        assert gt[c.row, c.col] != pred[c.row, c.col]
        assert c.positive == bool(gt[c.row, c.col])


def test_clicker_runs_without_ipp_and_restores_it():
    """The distance transform runs with OpenCV's IPP off (non-deterministic at ties) and leaves the setting as it was."""
    import cv2

    from segenv import clicker

    calls = []
    real = cv2.distanceTransform

    def spy(*args, **kwargs):
        calls.append(cv2.ipp.useIPP())
        return real(*args, **kwargs)

    before = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(True)
    try:
        cv2.distanceTransform = spy
        gt = np.zeros((20, 20), bool)
        gt[5:15, 5:15] = True
        assert clicker.next_click(gt, np.zeros_like(gt)) is not None
        assert calls and not any(calls)
        assert cv2.ipp.useIPP()
    finally:
        cv2.distanceTransform = real
        cv2.ipp.setUseIPP(before)
