"""The benchmark CLI writes the documented JSON, episode log and plot; resume keeps work."""

from __future__ import annotations

import json

import pytest

from benchmarks.run import main

KEYS = {"agent", "env", "split", "segmenter", "episodes", "miou", "ciou", "miou_per_click", "noc85", "noc90",
        "nof90", "invalid_step_rate", "seconds_per_click", "env_overhead_fraction"}


@pytest.mark.parametrize("agent", ["oracle", "random"])
def test_cli_writes_summary(agent, tmp_path):
    out = tmp_path / f"{agent}.json"
    s = main(["--agent", agent, "--episodes", "3", "--max-clicks", "3", "--image-size", "64", "--out", str(out), "--no-progress", "--sheet", "1"])
    data = json.loads(out.read_text())
    assert KEYS <= set(data) and data["episodes"] == 3 and len(data["miou_per_click"]) == 3
    assert out.with_suffix(".png").stat().st_size > 0 and out.with_suffix(".sheet.png").stat().st_size > 0
    assert len(out.with_suffix(".episodes.jsonl").read_text().splitlines()) == 3
    assert s["miou"] == data["miou"]
    if agent == "oracle":
        assert data["miou"] > 0.8


def test_resume_skips_finished_episodes(tmp_path):
    out = tmp_path / "o.json"
    args = ["--agent", "oracle", "--max-clicks", "2", "--image-size", "64", "--out", str(out), "--no-progress"]
    main(args + ["--episodes", "2"])
    log = out.with_suffix(".episodes.jsonl")
    first = log.read_text().splitlines()
    with log.open("a") as f:
        f.write('{"cut by a kill')  # a half-written line is dropped and redone
    s = main(args + ["--episodes", "4", "--resume"])
    lines = log.read_text().splitlines()
    assert lines[:2] == first and s["episodes"] == 4
    fresh = main(args + ["--episodes", "4", "--out", str(tmp_path / "fresh.json")])
    assert fresh["miou_per_click"] == s["miou_per_click"]


def test_corrupt_sample_is_skipped_not_fatal(tmp_path, real_data_root):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(real_data_root / "DAVIS", root / "DAVIS")
    first = sorted((root / "DAVIS" / "img").iterdir())[0]
    first.write_bytes(b"not a jpeg")
    out = tmp_path / "d.json"
    s = main(["--agent", "oracle", "--env", "SegAgent-DAVIS-v0", "--data-root", str(root), "--episodes", "0",
              "--max-clicks", "2", "--image-size", "32", "--out", str(out), "--no-progress"])
    assert len(s["skipped_episodes"]) == 1 and first.name in s["skipped_episodes"][0]["error"]
    assert s["episodes"] == len(sorted((root / "DAVIS" / "img").iterdir())) - 1


def test_second_run_on_the_same_out_is_refused(tmp_path):
    """While one run holds OUT, another run on the same --out stops with a clear message and
    leaves what the first wrote untouched (issue #17 item 5)."""
    from agents.evaluate import output_lock

    out = tmp_path / "o.json"
    args = ["--agent", "oracle", "--episodes", "2", "--max-clicks", "2", "--image-size", "64", "--out", str(out), "--no-progress"]
    main(args)
    before = out.with_suffix(".episodes.jsonl").read_text()
    with output_lock(out):  # another run is writing
        with pytest.raises(RuntimeError, match="being written by another run"):
            main(args)
    assert out.with_suffix(".episodes.jsonl").read_text() == before
    main(args)  # the lock is released with its holder


def test_resume_with_other_arguments_is_refused(tmp_path):
    """--resume continues only the run it was made for (issue #19: resume checks its arguments)."""
    out = tmp_path / "o.json"
    args = ["--agent", "oracle", "--image-size", "64", "--out", str(out), "--no-progress", "--episodes", "2"]
    main(args + ["--max-clicks", "2"])
    before = out.with_suffix(".episodes.jsonl").read_text()
    with pytest.raises(ValueError, match=r"--max-clicks was 2, now 3"):
        main(args + ["--max-clicks", "3", "--resume"])
    with pytest.raises(ValueError, match=r"--seed was 0, now 1"):
        main(args + ["--max-clicks", "2", "--seed", "1", "--resume"])
    assert out.with_suffix(".episodes.jsonl").read_text() == before
    main(args + ["--max-clicks", "2", "--episodes", "3", "--resume"])  # more episodes: fine


def test_resume_after_a_skipped_sample_runs_each_episode_once(tmp_path, real_data_root):
    """A skipped sample is remembered: resume neither reruns nor drops the episodes after it."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(real_data_root / "DAVIS", root / "DAVIS")
    images = sorted((root / "DAVIS" / "img").iterdir())
    images[0].write_bytes(b"not a jpeg")
    base = ["--agent", "oracle", "--env", "SegAgent-DAVIS-v0", "--data-root", str(root), "--max-clicks", "2",
            "--image-size", "32", "--no-progress"]
    out = tmp_path / "d.json"
    main(base + ["--out", str(out), "--episodes", "2"])  # episode 0 skipped, episode 1 run
    s = main(base + ["--out", str(out), "--episodes", "0", "--resume"])
    fresh = main(base + ["--out", str(tmp_path / "fresh.json"), "--episodes", "0"])
    lines = [json.loads(x) for x in out.with_suffix(".episodes.jsonl").read_text().splitlines()]
    assert sorted(d["episode"] for d in lines) == list(range(len(images)))  # each once
    assert s["episodes"] == fresh["episodes"] == len(images) - 1 and len(s["skipped_episodes"]) == 1
    assert s["miou_per_click"] == fresh["miou_per_click"]


def test_score_rule_and_limit(tmp_path):
    out = tmp_path / "o.json"
    s = main(["--agent", "oracle", "--episodes", "0", "--limit", "3", "--max-clicks", "2", "--image-size", "64",
              "--score", "best_so_far", "--out", str(out), "--no-progress"])
    assert s["episodes"] == 3 and s["limit"] == 3 and s["score_rule"] == "best_so_far"
    assert s["miou"] == s["miou_by_rule"]["best_so_far"] >= s["miou_by_rule"]["final"]
    assert "best_predicted" not in s["miou_by_rule"]  # the oracle states no IoU


def test_empty_targets_are_left_out_unless_the_dataset_means_them(tmp_path, real_data_root):
    """#19: an empty ground truth scores IoU 1 on an empty mask; benchmarks leave such items out of
    the numbers by default (counted), keep them on request, and keep them where the dataset makes
    them on purpose (the no-target variant, where NoObject is the answer)."""
    import shutil

    import cv2
    import numpy as np

    root = tmp_path / "data"
    shutil.copytree(real_data_root / "DAVIS", root / "DAVIS")
    gt = sorted((root / "DAVIS" / "gt").iterdir())[0]
    cv2.imwrite(str(gt), np.zeros_like(cv2.imread(str(gt), cv2.IMREAD_GRAYSCALE)))
    base = ["--agent", "oracle", "--env", "SegAgent-DAVIS-v0", "--data-root", str(root), "--episodes", "0",
            "--max-clicks", "2", "--image-size", "32", "--no-progress"]
    n = len(list((root / "DAVIS" / "gt").iterdir()))
    skipped = main(base + ["--out", str(tmp_path / "a.json")])
    kept = main(base + ["--out", str(tmp_path / "b.json"), "--empty-targets", "keep"])
    assert skipped["empty_targets"] == "skip" and skipped["empty_targets_skipped"] == 1 and skipped["episodes"] == n - 1
    assert kept["empty_targets_skipped"] == 0 and kept["episodes"] == n and kept["no_target_items"] == 1
    nt = main(["--agent", "oracle", "--env", "SegAgent-ShapesNoTarget-v0", "--episodes", "30", "--max-clicks", "2",
               "--image-size", "32", "--no-progress", "--out", str(tmp_path / "c.json")])
    assert nt["empty_targets"] == "keep" and nt["no_target_items"] > 0 and nt["no_target_accuracy"] == 1.0


def test_protocol_segagent_sets_the_released_evaluation(tmp_path):
    """#19 item 8: one flag for SegAgent's released evaluation; recorded in the result."""
    from agents.evaluate import parse_args

    args = parse_args(["--protocol", "segagent"])
    assert (args.score, args.limit, args.box_step, args.overlay_format, args.empty_targets) == (
        "best_predicted", 5000, "counted", "jpeg", "keep")
    assert parse_args([]).score == "final" and parse_args([]).limit is None
    s = main(["--agent", "oracle", "--episodes", "2", "--max-clicks", "3", "--image-size", "64", "--initial-state", "box",
              "--protocol", "segagent", "--out", str(tmp_path / "p.json"), "--no-progress"])
    assert s["protocol"] == "segagent" and s["score_rule"] == "best_predicted" and s["limit"] == 5000
    assert s["args"]["box_step"] == "counted" and s["miou_per_click"][0] > 0.5  # step 1 is the box


def test_oracle_finish_iou_stops_early(tmp_path):
    """#21: the oracle with Finish at an IoU uses fewer clicks than without, at (nearly) equal mIoU."""
    base = ["--agent", "oracle", "--episodes", "4", "--max-clicks", "4", "--image-size", "64", "--no-progress"]
    full = main(base + ["--out", str(tmp_path / "a.json")])
    stop = main(base + ["--finish-iou", "0.9", "--out", str(tmp_path / "b.json")])
    assert stop["finish_rate"] == 1.0 and stop["clicks_used"] < full["clicks_used"]
    assert stop["miou"] >= 0.9 and stop["miou"] <= full["miou"] + 1e-9


def test_torchrun_two_processes_merge_equal_one_process(tmp_path):
    """#15: `torchrun --nproc_per_node 2 benchmarks/run.py ...` shards the episodes by RANK; the last
    rank merges, and the merged result equals a one-process run."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    root = Path(__file__).resolve().parents[2]
    args = ["--agent", "oracle", "--episodes", "6", "--max-clicks", "3", "--image-size", "64", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(root / "benchmarks" / "run.py"), *args,
                    "--out", str(tmp_path / "two.json")], check=True, cwd=root, env=env, capture_output=True, timeout=300)
    two = json.loads((tmp_path / "two.json").read_text())
    one = main(args + ["--out", str(tmp_path / "one.json")])
    assert two["shards"] == 2 and two["episodes"] == one["episodes"] == 6
    for key in ("miou", "ciou", "miou_per_click", "noc90", "clicks_used"):
        assert two[key] == one[key], key
    merged = [json.loads(x)["episode"] for x in (tmp_path / "two.episodes.jsonl").read_text().splitlines()]
    assert merged == list(range(6))
