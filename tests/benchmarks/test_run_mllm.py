"""`benchmarks/run.py --agent mllm` takes any local checkpoint folder unchanged."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from agents.registry import DEFAULT_TINY_CHECKPOINT  # noqa: E402
from benchmarks.run import main  # noqa: E402


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_cli_runs_a_stock_vlm_folder(family, tmp_path):
    from agents.mllm import stock_tiny

    build = {"llava": stock_tiny.build_tiny_llava, "idefics3": stock_tiny.build_tiny_idefics3}[family]
    model_dir = build(tmp_path / family)
    out = tmp_path / "r.json"
    main(["--agent", "mllm", "--model", str(model_dir), "--episodes", "2", "--max-clicks", "2",
          "--image-size", "64", "--out", str(out), "--no-progress"])
    data = json.loads(out.read_text())
    assert data["episodes"] == 2 and data["steps"] == 4
    lines = [json.loads(l) for l in out.with_suffix(".episodes.jsonl").read_text().splitlines()]
    steps = [s for l in lines for s in l["steps"]]
    # random weights: whatever the model says is kept, and unparsable text is an invalid step, not a crash
    assert all(isinstance(s["output"], str) for s in steps)
    assert all(s["invalid"] == (s["action"] is None) for s in steps)
    assert data["invalid_step_rate"] == sum(s["invalid"] for s in steps) / len(steps)


@pytest.mark.skipif(not (DEFAULT_TINY_CHECKPOINT / "config.json").exists(), reason="shipped checkpoint not present")
def test_cli_runs_the_shipped_tiny_model(tmp_path):
    out = tmp_path / "tiny.json"
    s = main(["--agent", "mllm", "--episodes", "2", "--max-clicks", "3", "--out", str(out), "--no-progress"])
    assert s["episodes"] == 2 and s["invalid_step_rate"] == 0.0
    assert s["miou"] > 0.5  # greedy and seeded: the trained policy finds these two targets (random: ~0.1)
