"""agents/training/tiny_fit.py: label agreement of a policy on an example folder."""

from __future__ import annotations

import json

import pytest

from agents.training.tiny_fit import FitArgs, compare, main, run_fit, summarize_fit
from segenv.actions import Click, Finish


def test_compare_and_summary_by_hand():
    """Grid 4: label cell 5 is row 1, column 1. A right-sign click one cell away counts with tolerance
    1, not 0; a wrong-sign click and a Finish on a click label do not; a Finish label answered
    Finish agrees."""
    neg = {"action": "click", "positive": False, "cell": 5, "iou": 0.5}
    pos = {"action": "click", "positive": True, "cell": 5, "iou": 0.3}
    done = {"action": "finish", "positive": True, "cell": 0, "iou": 0.99}
    near = Click(0.6, 0.4, positive=False)  # row 1, column 2
    rows = [compare(neg, near, 0.7, 4, 1), compare(pos, near, 0.5, 4, 1), compare(pos, Finish(), 0.9, 4, 1),
            compare(done, Finish(), 0.97, 4, 1)]
    assert compare(neg, near, 0.7, 4, 0)["near"] is False and rows[0]["near"] is True
    s = summarize_fit(rows)
    assert (s["examples"], s["click_labels"], s["negative_labels"]) == (4, 3, 1)
    assert s["action_agree"] == pytest.approx(3 / 4, abs=1e-4) and s["answered_finish"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["sign_agree"] == pytest.approx(1 / 3, abs=1e-4) and s["negative_sign_agree"] == 1.0
    assert s["sign_and_cell"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["iou_mae"] == pytest.approx((20 + 20 + 60 + 2) / 4)
    assert summarize_fit([])["sign_agree"] is None


def test_a_policy_agrees_with_its_own_kept_clicks(tmp_path):
    """StaR+ examples keep the policy's own improving clicks as labels: re-asked on the stored overlay,
    the same policy gives exactly those clicks (cell tolerance 0), so the stored image is what it saw."""
    pytest.importorskip("transformers")
    from agents.registry import DEFAULT_TINY_CHECKPOINT
    from agents.training.tiny_data import TinyDataConfig, build_examples

    common = dict(policy=str(DEFAULT_TINY_CHECKPOINT), stop=4, max_clicks=3, initial_states=["points"], progress=False)
    star = build_examples(TinyDataConfig(kind="star_plus", out=str(tmp_path / "star"), **common))
    dagger = build_examples(TinyDataConfig(kind="dagger", **common))
    own = [i for i in range(len(star)) if (star[i]["positive"], star[i]["cell"]) != (dagger[i]["positive"], dagger[i]["cell"])
           and star[i]["action"] == "click"]
    assert own, "these seeded episodes have a kept click of the policy's own"
    result, rows = run_fit(FitArgs(model=str(DEFAULT_TINY_CHECKPOINT), data=str(tmp_path / "star"), examples=0, cell_tolerance=0))
    by_index = {r["index"]: r for r in rows}
    assert sorted(by_index) == list(range(len(star))) and result["grid"] == 14
    assert all(by_index[i]["sign_ok"] and by_index[i]["near"] for i in own)
    out = tmp_path / "fit.json"
    saved = main(["--model", str(DEFAULT_TINY_CHECKPOINT), "--data", str(tmp_path / "star"), "--examples", "2", "--out", str(out)])
    assert json.loads(out.read_text())["all"] == saved["all"] and saved["all"]["examples"] == 2


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--model", "m", "--data", "d", "--mid-iou", "0.9,0.1"])
    assert "--mid-iou must be two numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="is not a folder"):
        main(["--model", "m", "--data", str(tmp_path / "missing")])
