"""benchmarks/tree_search.py: greedy and tree rows on the same items, through the harness, with paired CIs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from benchmarks.tree_search import main  # noqa: E402


def test_one_cell_writes_greedy_and_tree_rows_with_paired_differences(tmp_path):
    out = tmp_path / "tree.json"
    res = main(["--envs", "SegAgent-Shapes-v0", "--states", "points", "--episodes", "2", "--max-clicks", "2",
                "--k", "2", "--no-stop", "--no-progress", "--out", str(out)])
    rows = res["cells"]["SegAgent-Shapes-v0, points"]
    assert [r["agent"] for r in rows] == ["greedy", "tree k=2", "tree k=2, no PRM stop"]
    assert "vs_greedy" not in rows[0] and all(r["vs_greedy"]["n"] == 2 for r in rows[1:])
    assert rows[1]["agent_stats"]["steps"] >= 1 and len(rows[1]["miou_per_click"]) == 2
    saved = json.loads(out.read_text())
    assert saved["table"].count("\n") == 4  # header, rule, three rows
    for r in rows:  # every run left its harness files beside the summary
        assert (tmp_path / r["run"].split("/")[-1]).with_suffix(".episodes.jsonl").exists()


def test_prm_model_reaches_the_tree_runs_only(tmp_path):
    from agents.registry import DEFAULT_TINY_CHECKPOINT

    prm = str(DEFAULT_TINY_CHECKPOINT)
    res = main(["--envs", "SegAgent-Shapes-v0", "--states", "points", "--episodes", "1", "--max-clicks", "1",
                "--k", "2", "--prm-model", prm, "--no-progress", "--out", str(tmp_path / "tree.json")])
    greedy, tree = res["cells"]["SegAgent-Shapes-v0, points"]
    identity = {r["agent"]: json.loads((tmp_path / r["run"].split("/")[-1]).with_suffix(".run.json").read_text())
                for r in (greedy, tree)}
    assert identity["tree k=2"]["prm_model"] == prm and identity["greedy"]["prm_model"] is None
