"""benchmarks/prm_filtering.py: Tab. 3's metrics against hand-computed values, the seeded mask set,
and an end-to-end --quick run on a stub PRM."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401
from benchmarks import prm_filtering as pf

NAN = math.nan


def test_metrics_match_hand_computed_values():
    pred = [0.9, 0.5, NAN, 0.7, 0.2]  # the NaN (unparsable) row is left out of every metric
    true = [0.8, 0.6, 0.3, 0.9, 0.1]
    m = pf.filtering_metrics(pred, true, keep_threshold=0.8, good_threshold=0.8)
    # parsable: p = .9 .5 .7 .2, t = .8 .6 .9 .1; errors in percent: 10 -10 -20 10
    assert m["n"] == 5 and m["n_unparsable"] == 1
    assert m["mae"] == pytest.approx(12.5)
    assert m["mse"] == pytest.approx((100 + 100 + 400 + 100) / 4)
    # deviations from the means (.575, .6): dp = .325 -.075 .125 -.375, dt = .2 0 .3 -.5
    assert m["pearson"] == pytest.approx(0.29 / math.sqrt(0.2675 * 0.38))
    # ranks p: 4 2 3 1, t: 3 2 4 1 -> d^2 = 1 0 1 0 -> 1 - 6 * 2 / (4 * 15)
    assert m["spearman"] == pytest.approx(0.8)
    # kept (p >= .8): first only; good (t >= .8): first and fourth
    assert (m["kept"], m["good"], m["precision"], m["recall"]) == (1, 2, 1.0, 0.5)
    m = pf.filtering_metrics(pred, true, keep_threshold=0.5, good_threshold=0.8)
    assert (m["kept"], m["precision"], m["recall"]) == (3, pytest.approx(2 / 3), 1.0)


def test_metrics_are_nan_without_enough_data():
    m = pf.filtering_metrics([NAN, NAN, NAN], [0.2, 0.9, 1.0])
    assert m["n"] == 3 and m["n_unparsable"] == 3 and m["kept"] == 0 and m["good"] == 0
    for key in ("mae", "mse", "pearson", "spearman", "precision", "recall"):
        assert math.isnan(m[key]), key
    one = pf.filtering_metrics([0.5, NAN], [0.7, 0.1])
    assert one["mae"] == pytest.approx(20.0) and math.isnan(one["pearson"]) and math.isnan(one["spearman"])
    flat = pf.filtering_metrics([0.9, 0.9, 0.9], [0.1, 0.5, 0.95])  # a constant prediction correlates with nothing
    assert math.isnan(flat["pearson"]) and flat["precision"] == pytest.approx(1 / 3) and flat["recall"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        pf.filtering_metrics([0.1, 0.2], [0.1])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="min-points"):
        pf.FilteringArgs(min_points=5, max_points=2)
    with pytest.raises(ValueError, match="keep-threshold"):
        pf.FilteringArgs(keep_threshold=80)
    with pytest.raises(ValueError, match="--readout"):
        pf.FilteringArgs(readout="argmax")
    with pytest.raises(ValueError, match="--masks"):
        pf.FilteringArgs(masks="boxes")


def test_low_iou_confidence_against_hand_computed_values():
    pred = [0.95, 0.5, NAN, 0.92, 0.99]
    true = [0.05, 0.0, 0.02, 0.8, 0.09]  # low (< 0.1): rows 0, 1, 2 (NaN, left out), 4
    low = pf.low_iou_confidence(pred, true)
    assert low["n"] == 3
    assert low["mean_pred"] == pytest.approx((0.95 + 0.5 + 0.99) / 3)
    assert low["share_high"] == pytest.approx(2 / 3)  # .95 and .99 >= .9
    none = pf.low_iou_confidence([0.9], [0.5])
    assert none["n"] == 0 and math.isnan(none["mean_pred"]) and math.isnan(none["share_high"])


def test_mask_set_is_seeded_and_varied():
    args = pf.FilteringArgs(items=3, masks_per_item=3, min_points=1, max_points=6, seed=4)
    env = gym.make("SegAgent-Shapes-v0", initial_state="points", image_size=64, dataset_kwargs={"image_size": 64})
    first = [rec for _, rec in pf.filtering_set(env, args)]
    again = [rec for _, rec in pf.filtering_set(env, args)]
    env.close()
    assert first == again and len(first) == 9
    assert [r["index"] for r in first] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(1 <= r["points"] <= 6 for r in first) and len({r["points"] for r in first}) > 1
    assert all(0.0 <= r["true_iou"] <= 1.0 for r in first)


class StubPRM:
    """Fixed predictions in a cycle (NaN = an unparsable answer); records each batch's size."""

    def __init__(self, values):
        self.values, self.k, self.batches = list(values), 0, []

    def score_many(self, observations):
        self.batches.append(len(observations))
        out = [self.values[(self.k + i) % len(self.values)] for i in range(len(observations))]
        self.k += len(observations)
        self.last_texts = ["stub"] * len(observations)
        return out


def test_quick_run_end_to_end_on_a_stub_prm(tmp_path):
    out = tmp_path / "filtering.json"
    stub = StubPRM([0.95, NAN, 0.3, 0.85])
    result = pf.main(["--quick", "--batch-size", "5", "--image-size", "64", "--out", str(out)], prm=stub)
    assert stub.batches == [5, 5, 5, 1]  # 8 items x 2 masks, scored in batches
    saved = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    for key in ("mae", "mse", "pearson", "spearman", "precision", "recall", "n", "n_unparsable"):
        assert key in saved, key
    assert saved["n"] == 16 and saved["n_unparsable"] == 4 and saved["model"] == "StubPRM"
    rows = saved["rows"]
    assert [r["pred_iou"] for r in rows[:4]] == [0.95, None, 0.3, 0.85]  # NaN is null in the JSON
    pred = [NAN if r["pred_iou"] is None else r["pred_iou"] for r in rows]
    expected = pf.filtering_metrics(pred, [r["true_iou"] for r in rows], 0.8, 0.8)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert saved[key] is None and math.isnan(result[key]), key
        else:
            assert saved[key] == pytest.approx(value), key


def test_plot_and_json_without_any_readable_answer(tmp_path):
    result = {
        **pf.filtering_metrics([NAN, NAN], [0.4, 0.9]),
        "env": "e", "segmenter": "s",
        "rows": [{"true_iou": 0.4, "pred_iou": NAN}, {"true_iou": 0.9, "pred_iou": NAN}],
    }
    pf.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    text = json.dumps(pf._json_safe(result), allow_nan=False)
    assert json.loads(text)["mae"] is None


def test_wrong_object_masks_are_scored_and_rated(tmp_path):
    """--masks wrong_object: clean masks of a distractor (mostly IoU < 0.1), seeded; low_iou is
    how the PRM rated those."""
    out = tmp_path / "wo.json"
    argv = ["--masks", "wrong_object", "--items", "6", "--masks-per-item", "2", "--image-size", "64", "--out", str(out)]
    result = pf.main(argv, prm=StubPRM([0.95, 0.2]))
    again = pf.main(argv, prm=StubPRM([0.95, 0.2]))
    saved = json.loads(out.read_text())
    assert saved["masks"] == "wrong_object" and saved["n"] == len(saved["rows"]) > 0
    assert [r["true_iou"] for r in result["rows"]] == [r["true_iou"] for r in again["rows"]]
    true = [r["true_iou"] for r in saved["rows"]]
    assert sum(t < 0.1 for t in true) >= len(true) / 2  # a distractor's mask barely overlaps the referent
    expected = pf.low_iou_confidence([r["pred_iou"] for r in saved["rows"]], true)
    assert saved["low_iou"]["n"] == expected["n"] > 0
    assert saved["low_iou"]["mean_pred"] == pytest.approx(expected["mean_pred"])
