"""benchmarks/paired_bootstrap.py: the paired bootstrap of a final-IoU difference, on run.py outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.paired_bootstrap import main, paired_bootstrap, ratio_interval


def test_constant_difference_has_a_zero_width_interval():
    a = np.linspace(0.5, 0.9, 20)
    r = paired_bootstrap(a, a + 0.01, resamples=500)
    assert r["diff"] == pytest.approx(0.01) and r["ci_low"] == pytest.approx(0.01) and r["ci_high"] == pytest.approx(0.01)
    assert (r["b_better"], r["b_worse"], r["p_le_0"]) == (20, 0, 0.0)


def test_pairing_is_tighter_than_the_spread_of_items():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.2, 1.0, 200)  # items differ a lot
    b = a + rng.normal(0.005, 0.01, 200)  # the two agents differ a little, per item
    r = paired_bootstrap(a, b, resamples=2000, seed=3)
    assert r["ci_low"] > 0 and r["ci_high"] - r["ci_low"] < 0.01


def _run(path, ious, samples=None):
    rows = [{"episode": k, "sample_index": k if samples is None else samples[k], "initial_iou": 0.0,
             "steps": [{"iou": v}] if v is not None else []} for k, v in enumerate(ious)]
    path.with_suffix(".episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.write_text("{}")
    return str(path)


def test_main_pairs_episodes_from_run_outputs(tmp_path):
    a = _run(tmp_path / "a.json", [0.5, 0.8, None])  # an episode without steps keeps its initial IoU
    b = _run(tmp_path / "b.json", [0.6, 0.8, 0.1])
    r = main(["--a", a, "--b", b, "--resamples", "200", "--out", str(tmp_path / "r.json")])
    assert r["n"] == 3 and r["diff"] == pytest.approx(0.2 / 3) and (r["b_better"], r["ties"]) == (2, 1)
    assert json.loads((tmp_path / "r.json").read_text())["diff"] == r["diff"]
    c = _run(tmp_path / "c.json", [0.6, 0.8, 0.1], samples=[0, 2, 1])
    with pytest.raises(SystemExit):
        main(["--a", a, "--b", c])


def test_ratio_interval_by_hand():
    """mean(num)/mean(den) over the same drawn items: a constant ratio has a zero-width interval;
    otherwise the interval matches a loop over the same seeded draws; an undefined draw gives None."""
    den = np.array([0.1, 0.3, 0.2, 0.4])
    assert ratio_interval(0.5 * den, den, resamples=200) == pytest.approx((0.5, 0.5))
    num = np.array([0.05, 0.3, -0.1, 0.2])
    idx = np.random.default_rng(3).integers(0, 4, size=(500, 4))
    by_hand = [num[i].mean() / den[i].mean() for i in idx]
    lo, hi = ratio_interval(num, den, resamples=500, level=0.9, seed=3)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(by_hand, [0.05, 0.95])))
    assert lo < num.mean() / den.mean() < hi
    assert ratio_interval(num, np.array([0.1, -0.1, 0.0, 0.0]), resamples=50) is None
    with pytest.raises(ValueError, match="pair item by item"):
        ratio_interval(num, den[:3])
