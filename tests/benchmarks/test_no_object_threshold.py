"""benchmarks/no_object_threshold.py: ROC AUC, the bias sweep and the chosen bias (issue #21)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.no_object_threshold import largest_bias, main, rates, roc_auc


def test_roc_auc_counts_ties_half_and_needs_both_classes():
    assert roc_auc([True, False], [2.0, 1.0]) == 1.0 and roc_auc([True, False], [1.0, 2.0]) == 0.0
    assert roc_auc([True, False, False], [1.0, 1.0, 0.0]) == 0.75
    assert math.isnan(roc_auc([False, False], [1.0, 2.0]))


def test_sweep_and_largest_bias_follow_margin_plus_bias_above_zero():
    margins = np.array([-1.0, -2.0, -3.0, -4.0, -0.5, float("nan")])
    empty = np.array([False, False, False, False, True, True])
    r = rates(margins, empty, 1.5)  # -1 + 1.5 > 0: one of four real targets; -0.5 + 1.5 > 0; NaN never
    assert r["false_no_object_rate"] == 0.25 and r["no_target_accuracy"] == 0.5
    assert largest_bias(margins[~empty], 0.0) == 1.0  # at 1.0 no real target flips (strictly > 0)
    assert largest_bias(margins[~empty], 0.25) == 2.0
    assert largest_bias(margins[~empty], 1.0) == math.inf


def test_quick_run_writes_the_summary(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import agents  # noqa: F401
    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from agents.mllm.tiny_build import build_tiny_vlm

    path = build_tiny_vlm(str(tmp_path / "tiny"), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, pointer_dim=16, cnn_channels=(8, 8, 16), loc_grid=14, image_size=112)
    out = tmp_path / "t.json"
    r = main(["--items", "3", "--image-size", "64", "--no-progress", "--out", str(out)],
             policy=MLLMPolicy(MLLMPolicyConfig(model_path=path, max_new_tokens=4)))
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 6 and set(data["envs"]) == {"SegAgent-ShapesNoTarget-v0", "SegAgent-ThinShapes-v0"}
    assert all(len(v["sweep"]) == len(data["args"]["biases"]) for v in data["envs"].values())
    assert r["chosen_bias"] is None or isinstance(r["chosen_bias"], float)
