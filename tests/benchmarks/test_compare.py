"""benchmarks/compare.py: several agents on the same samples, one table, JSON and plot."""

from __future__ import annotations

import json

from benchmarks.compare import main


def test_compare_two_agents(tmp_path):
    out = tmp_path / "cmp"
    rows = main(["--agents", "oracle", "random", "--episodes", "2", "--max-clicks", "2", "--out", str(out),
                 "--", "--image-size", "64", "--no-progress"])
    assert [r["agent"] for r in rows] == ["oracle", "random"]
    assert all(r["episodes"] == 2 and r["args"]["image_size"] == 64 for r in rows)
    assert rows[0]["miou"] > rows[1]["miou"]  # the oracle beats random clicks
    assert json.loads((out / "summary.json").read_text())[0]["miou"] == rows[0]["miou"]
    assert len((out / "table.md").read_text().splitlines()) == 4  # header, separator, one row per agent
    assert (out / "miou_per_click.png").stat().st_size > 0 and (out / "oracle.json").exists()
