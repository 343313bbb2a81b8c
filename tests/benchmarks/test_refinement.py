"""benchmarks/refinement.py: gains beside the oracle's, where negative clicks land, the stated IoU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.refinement import ClickAudit, main
from segenv.rollout import StepRecord


def test_click_audit_by_hand():
    """A negative click in the false-positive region, a positive one in the false-negative region,
    and a negative click on the object (wrong region, wrong sign)."""
    gt = np.zeros((10, 10), bool)
    gt[2:6, 2:6] = True
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:9] = True  # spills to the right (cols 6..8 are false positive)
    mask[5, 2:6] = False  # misses the bottom row of the object
    audit = ClickAudit()
    obs, info = {"mask": mask}, {"gt_mask": gt}
    audit(obs, StepRecord([0, 0.75, 0.35], 0.0, 0.0, False), info)  # (row 3, col 7): false positive
    audit(obs, StepRecord([1, 0.35, 0.55], 0.0, 0.0, False), info)  # (row 5, col 3): false negative
    audit(obs, StepRecord([0, 0.35, 0.35], 0.0, 0.0, False), info)  # (row 3, col 3): on the object
    audit(obs, StepRecord([3, 0, 0], 0.0, 0.0, False), info)  # Finish: not a click
    s = audit.summary()
    assert s["clicks"] == 3 and s["negative_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["negative_in_fp"] == 0.5 and s["positive_in_fn"] == 1.0
    # the oracle clicks negative here (12 false-positive pixels against 4 false-negative ones)
    assert s["sign_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    # its click is the centre of the 4x3 false-positive block: 2 px from the nearest correct pixel
    assert [r["oracle_depth"] for r in audit.rows] == [2.0, 2.0, 2.0]
    assert s["sign_agreement_by_depth"]["1.5-3"] == {"clicks": 3, "sign_agreement": pytest.approx(2 / 3, abs=1e-4)}
    assert s["sign_agreement_by_depth"]["<1.5"] == {"clicks": 0, "sign_agreement": None}


def test_benchmark_writes_cells_and_ratios(tmp_path):
    out = tmp_path / "r.json"
    result = main(["--envs", "SegAgent-Shapes-v0", "--states", "points", "--agents", "oracle", "mllm",
                   "--episodes", "2", "--max-clicks", "2", "--out", str(out), "--no-progress"])
    saved = json.loads(out.read_text())
    assert saved["cells"].keys() == {"oracle", "mllm"} and out.with_suffix(".png").stat().st_size > 0
    oracle = saved["cells"]["oracle"]["SegAgent-Shapes-v0"]["points"]
    mllm = saved["cells"]["mllm"]["SegAgent-Shapes-v0"]["points"]
    assert len(oracle["miou_per_click"]) == 2 and oracle["gain"] > 0 and oracle["negative_in_fp"] in (None, 1.0)
    assert mllm["gain_ratio"] == pytest.approx(mllm["gain"] / oracle["gain"], abs=1e-3)
    # per-item IoUs: their means are the cell's numbers, and the paired interval is around the ratio
    for cell in (oracle, mllm):
        assert len(cell["final_ious"]) == len(cell["initial_ious"]) == 2
        assert np.mean(cell["final_ious"]) == pytest.approx(cell["miou_per_click"][-1], abs=1e-3)
        assert np.mean(cell["initial_ious"]) == pytest.approx(cell["initial_miou"], abs=1e-3)
    assert mllm["initial_ious"] == oracle["initial_ious"]  # same items, same starts: paired
    assert min(np.subtract(oracle["final_ious"], oracle["initial_ious"])) > 0  # so every draw has a ratio
    lo, hi = mllm["gain_ratio_ci"]
    assert lo - 1e-3 <= mllm["gain_ratio"] <= hi + 1e-3
    assert result["reference"] == "oracle"


def test_cell_oracle_runs_beside_the_oracle_and_a_bad_grid_is_refused(tmp_path, monkeypatch, capsys):
    import agents.registry as registry

    grids = []
    build = registry._cell_oracle
    monkeypatch.setitem(registry.AGENTS._factories, "cell-oracle", lambda **kw: grids.append(kw["grid"]) or build(**kw))
    out = tmp_path / "c.json"
    main(["--envs", "SegAgent-Shapes-v0", "--states", "points", "--agents", "oracle", "cell-oracle", "--cell-grid", "6",
          "--episodes", "2", "--max-clicks", "2", "--out", str(out), "--no-progress"])
    cell = json.loads(out.read_text())["cells"]["cell-oracle"]["SegAgent-Shapes-v0"]["points"]
    assert grids == [6] and len(cell["miou_per_click"]) == 2 and "gain_ratio" in cell
    with pytest.raises(SystemExit):
        main(["--cell-grid", "0", "--out", str(out)])
    assert "--cell-grid must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--level", "95", "--out", str(out)])
    assert "--level in (0, 1)" in capsys.readouterr().err
