"""benchmarks/paper_report.py: the report's files hold the rows, missing data is a skipped line,
finished runs are reused, a crashed one is resumed, --force reruns; the published rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from benchmarks import paper_report as pr  # noqa: E402
from benchmarks import report_tables as rt  # noqa: E402
from benchmarks.prm_filtering import _json_safe  # noqa: E402

SHAPES, DAVIS = "SegAgent-Shapes-v0", "SegAgent-DAVIS-v0"


def _argv(out_dir: Path, empty_root: Path) -> list[str]:
    """Two episodes of two clicks, oracle and the shipped policy, plus a real dataset without data."""
    return ["--envs", SHAPES, DAVIS, "--agents", "oracle", "mllm", "--episodes", "2", "--max-clicks", "2",
            "--prm-items", "2", "--prm-masks-per-item", "2", "--image-size", "64", "--data-root", str(empty_root),
            "--out-dir", str(out_dir), "--no-progress"]


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, Path, dict]:
    """One report, made once for the module: (its folder, the empty data root, the returned report)."""
    root = tmp_path_factory.mktemp("report")
    empty = root / "no_data"
    empty.mkdir()
    out = root / "out"
    return out, empty, pr.main(_argv(out, empty))


def _copy(first: tuple[Path, Path, dict], tmp_path: Path) -> Path:
    """A private copy of the first report's folder, so a test that reruns leaves the others' alone."""
    dest = tmp_path / "out"
    shutil.copytree(first[0], dest)
    return dest


def _episodes_files(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((out / "runs" / SHAPES).glob("*.episodes.jsonl"))}


def test_report_files_hold_the_rows(first):
    out, _, report = first
    for name in ("report.md", "report.json", "miou_per_click.png", "prm_filtering.json"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "report.json").read_text())
    rows = saved["envs"][SHAPES]["rows"]
    assert [r["agent"] for r in rows] == ["oracle", "mllm"]
    assert all(r["episodes"] == 2 and len(r["miou_per_click"]) == 2 and r["how"] == "ran" for r in rows)
    assert rows[0]["miou"] > 0.8  # the oracle on Shapes
    assert saved["prm"]["n"] == 4 and saved["prm"]["mae"] is not None
    md = (out / "report.md").read_text()
    assert "| oracle | " in md and "| mllm | " in md
    assert "paper, RefCOCO val, not comparable data" in md and "5.58-6.88" in md
    assert f"**{SHAPES}**: no published number" in md
    assert md.count("--envs SegAgent-Shapes-v0 SegAgent-DAVIS-v0") == 1 and "- git commit: " in md
    assert "![mIoU per click" in md
    for agent in ("oracle", "mllm"):
        assert (out / "runs" / SHAPES / f"{agent}.episodes.jsonl").exists()
    assert saved == json.loads(json.dumps(_json_safe(report)))  # report.json holds all that main returned


def test_missing_dataset_is_a_skipped_line_not_a_crash(first):
    out, empty, report = first
    skipped = report["envs"][DAVIS]
    assert skipped["rows"] == [] and skipped["skipped"].startswith(f"davis: data not found under {empty}")
    md = (out / "report.md").read_text()
    assert f"skipped: davis: data not found under {empty}" in md
    assert "\n" not in skipped["skipped"]  # the first line only
    assert not (out / "runs" / DAVIS).exists()


def test_second_call_reuses_the_runs_and_force_reruns_them(first, tmp_path):
    out = _copy(first, tmp_path)
    before = _episodes_files(out)
    again = pr.main(_argv(out, first[1]))
    assert [r["how"] for r in again["envs"][SHAPES]["rows"]] == ["reused", "reused"]
    assert again["prm"]["how"] == "reused" and _episodes_files(out) == before
    assert [r["miou"] for r in again["envs"][SHAPES]["rows"]] == [r["miou"] for r in first[2]["envs"][SHAPES]["rows"]]
    forced = pr.main(_argv(out, first[1]) + ["--force"])
    assert [r["how"] for r in forced["envs"][SHAPES]["rows"]] == ["ran", "ran"] and forced["prm"]["how"] == "ran"
    after = _episodes_files(out)
    assert after.keys() == before.keys() and all(after[k] > before[k] for k in before)
    # other arguments are another run: not reused
    more = pr.main(_argv(out, first[1]) + ["--agents", "oracle", "--max-clicks", "3", "--prm-items", "0"])
    assert more["envs"][SHAPES]["rows"][0]["how"] == "ran" and len(more["envs"][SHAPES]["rows"][0]["miou_per_click"]) == 3


def test_a_run_cut_short_is_resumed_not_redone(first, tmp_path):
    out = _copy(first, tmp_path)
    run = out / "runs" / SHAPES / "oracle"
    run.with_suffix(".json").unlink()  # killed before the summary was written ...
    log = run.with_suffix(".episodes.jsonl")
    kept = log.read_text().splitlines()[0]
    log.write_text(kept + "\n")  # ... after its first episode
    report = pr.main(_argv(out, first[1]) + ["--prm-items", "0"])
    assert [r["how"] for r in report["envs"][SHAPES]["rows"]] == ["resumed", "reused"]
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == kept
    assert report["envs"][SHAPES]["rows"][0]["miou"] == first[2]["envs"][SHAPES]["rows"][0]["miou"]


def test_published_rows_sit_beside_ours_for_real_datasets():
    row = {"agent": "oracle", "episodes": 10, "noc_max_clicks": 5, "split": "test", "ciou": 0.5, "noc85": 2.0, "noc90": 3.25}
    davis = "\n".join(rt.published_lines(DAVIS, {"rows": [row]}))
    assert "| ours: oracle (10 episodes, up to 5 clicks) | test | 50.00 |" in davis and "| 3.25 |" in davis
    assert "| FocSAM | all |" in davis and "4.77" in davis and "up to 20 clicks" in davis
    refcoco = "\n".join(rt.published_lines("SegAgent-RefCOCO-v0", {"rows": [{**row, "split": "val"}]}))
    assert "| SegAgent LLaVA+SAM | val | 79.20 |" in refcoco and "| SegAgent Qwen+SimpleClick | testB | 76.57 |" in refcoco
    assert "lists no published number" in rt.published_lines("SegAgent-DIS5K-v0", {"rows": [row]})[0]
    assert "no published number (procedural" in rt.published_lines("SegAgent-ThinShapes-v0", {"rows": [row]})[0]


def test_arguments():
    assert pr.ReportArgs(quick=True).episodes == pr.QUICK["episodes"]
    with pytest.raises(ValueError, match="--episodes"):
        pr.ReportArgs(episodes=-1)
    assert pr.expected_episodes(0, 7) == 7 and pr.expected_episodes(100, 7) == 7 and pr.expected_episodes(3, 7) == 3


def test_no_target_columns_follow_the_env_not_the_episodes():
    """A no-target env shows its columns even when the items run held none (a short run)."""
    row = {"agent": "mllm", "miou_per_click": [0.5], "miou": 0.5, "ciou": 0.4, "noc85": 1.0, "noc90": 1.0,
           "clicks_used": 1.0, "finish_rate": 1.0, "stop_at_best_rate": float("nan"), "no_target_items": 0,
           "no_target_accuracy": float("nan"), "false_no_object_rate": 0.0, "invalid_step_rate": 0.0,
           "seconds_per_click": 0.01, "run": "runs/x.json", "how": "ran"}
    with_col = rt.main_table({"rows": [row], "no_target_env": True})
    assert "no-target acc." in with_col[0] and "| 0 |  | 0.000 |" in with_col[2]
    assert "no-target" not in rt.main_table({"rows": [row], "no_target_env": False})[0]
