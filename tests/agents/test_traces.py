"""agents.training.traces: oracle traces (D_traj) as one HF dataset, chunked/sharded/resumable, and the SFT view."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datasets")

from datasets import Image, List, load_from_disk  # noqa: E402

from agents.mllm.prompt import ActionFormat, parse_action_text  # noqa: E402
from agents.training.trace_sft import load_traces, to_sft_dataset  # noqa: E402
from agents.training.trace_store import METADATA, shard_dir  # noqa: E402
from agents.training.traces import (  # noqa: E402
    INITIAL_STATES,
    TraceConfig,
    generate_traces,
    initial_state_for,
    merge,
    reset_seed_for,
)
from segenv import render as R  # noqa: E402

EPISODES = 6


def base_config(out: Path, **kw) -> TraceConfig:
    return TraceConfig(
        out=str(out),
        episodes=EPISODES,
        chunk_size=2,
        max_clicks=6,
        env_kwargs={"image_size": 64, "dataset_kwargs": {"image_size": 96}},
        initial_mix=(0.5, 0.25, 0.25),
        seed=3,
        progress=False,
        **kw,
    )


def table(path) -> dict:
    """Every stored byte of the traces at ``path`` (images and masks as their PNG bytes)."""
    return load_from_disk(str(path)).data.to_pydict()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, one shard: the result every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("traces") / "one"
    path = generate_traces(base_config(out, shard=0, num_shards=1))
    assert path == out
    return out


def test_traces_are_one_hf_dataset_with_image_features(reference):
    ds = load_from_disk(str(reference))  # the out folder itself is the dataset
    assert ds.features["image"] == Image() and ds.features["masks"] == List(Image())
    assert 0 < len(ds) <= EPISODES and ds["sample_index"] == sorted(ds["sample_index"])
    row = ds[0]
    assert row["image"].size == (64, 64) and row["image"].mode == "RGB"
    mask = np.asarray(row["masks"][0])
    assert mask.shape == (64, 64) and mask.dtype == bool
    assert not (reference / "shards").exists()  # merged: the work folders are gone
    assert json.loads((reference / METADATA).read_text())["merged"] is True
    made = json.loads(ds.info.description)["segagent_traces"]
    assert made == base_config(reference, shard=0, num_shards=1).identity()


def test_traces_strictly_improve_and_stop(reference):
    ds = load_traces(reference)
    assert set(ds["sample_index"]) <= set(range(EPISODES))
    assert set(ds["initial_state"]) <= set(INITIAL_STATES)
    ends = []
    for row in ds.select_columns(["initial_state", "x", "positive", "iou_before", "iou_after", "kind"]):
        kinds = row["kind"]
        assert set(kinds[:-1]) <= {"click"} and kinds[-1] in ("click", "finish", "no_object")  # an end step is last
        clicks = [k for k, kind in enumerate(kinds) if kind == "click"]
        before, after = np.asarray(row["iou_before"])[clicks], np.asarray(row["iou_after"])[clicks]
        assert len(row["iou_before"]) == len(row["iou_after"]) == len(row["x"]) == len(row["positive"]) == len(kinds) <= 7
        assert np.all(after > before)  # every kept click strictly improves
        assert np.all(before[1:] == after[:-1])  # ... on the best so far (the previous kept step)
        assert np.all(before < 0.98)  # the trace ended once the target was reached
        if clicks and row["initial_state"] == "empty":
            assert before[0] == 0.0
        if kinds[-1] == "finish":  # Finish is taken on the mask the last kept click made
            assert row["iou_before"][-1] == row["iou_after"][-1] == (after[-1] if clicks else row["iou_before"][-1])
        ends.append(kinds[-1])
    assert "finish" in ends  # the oracle's Finish steps are in D_traj (issue #21)


def test_sft_view_renders_finish_steps(reference):
    sft = to_sft_dataset(load_traces(reference))
    answers = [sft[i]["completion"][0]["content"][0]["text"] for i in range(len(sft))]
    finishes = [a for a in answers if a.endswith("Finish")]
    assert finishes and all(a.startswith("Current IOU: ") for a in finishes)
    assert any("point:" in a for a in answers)


def test_initial_state_recipe_is_deterministic_and_mixed():
    states = [initial_state_for(i, seed=0) for i in range(3000)]
    assert states == [initial_state_for(i, seed=0) for i in range(3000)]
    frac = {s: states.count(s) / len(states) for s in INITIAL_STATES}
    assert frac["empty"] == pytest.approx(0.6, abs=0.04)
    assert frac["box"] == pytest.approx(0.2, abs=0.04)
    assert frac["points"] == pytest.approx(0.2, abs=0.04)
    assert {initial_state_for(i, 0, (0, 1, 0)) for i in range(50)} == {"box"}


def test_resume_after_interruption_gives_the_same_result(reference, tmp_path):
    out = tmp_path / "resumed"
    cfg = base_config(out, shard=0, num_shards=1, merge=False)
    assert generate_traces(cfg) == shard_dir(out, 0, 1)  # not merged: the work folders stay
    sdir = shard_dir(out, 0, 1)
    chunks = sorted(sdir.glob("chunk-*"))
    assert len(chunks) == 3  # 6 samples in chunks of 2
    # a kill -9 mid-chunk: the last chunk never got renamed into place, its tmp dir is left over
    shutil.rmtree(chunks[-1])
    tmp = sdir / f".tmp-{chunks[-1].name}-12345"
    (tmp / "traces").mkdir(parents=True)
    (tmp / "traces" / "garbage.arrow").write_bytes(b"\x00partial")
    before = {c.name: (c / "traces" / "data-00000-of-00001.arrow").read_bytes() for c in chunks[:-1]}
    mtimes = {c.name: (c / "chunk.json").stat().st_mtime_ns for c in chunks[:-1]}
    assert generate_traces(cfg) == sdir
    assert not list(sdir.glob(".tmp-*"))
    # finished chunks were kept as they were, only the missing one was redone
    assert {c.name: (c / "chunk.json").stat().st_mtime_ns for c in chunks[:-1]} == mtimes
    assert {c.name: (c / "traces" / "data-00000-of-00001.arrow").read_bytes() for c in chunks[:-1]} == before
    assert merge(out) == out
    assert table(out) == table(reference)


def test_two_shards_merged_equal_one_process(reference, tmp_path):
    out = tmp_path / "sharded"
    first = generate_traces(base_config(out, shard=1, num_shards=2))
    assert first == shard_dir(out, 1, 2)  # the other shard is not done: no merge yet
    assert not (out / "state.json").exists()
    with pytest.raises(ValueError, match="not finished"):
        load_traces(out)
    # partial=True: the finished chunks (shard 1: odd indices), rows as the one-process run has them
    part = load_traces(out, partial=True)
    ref = load_from_disk(str(reference))
    assert part["sample_index"] == [i for i in ref["sample_index"] if i % 2 == 1]
    assert part.select_columns(["x", "kind"]).to_dict() == ref.filter(lambda r: r["sample_index"] % 2 == 1).select_columns(["x", "kind"]).to_dict()
    assert generate_traces(base_config(out, shard=0, num_shards=2)) == out
    assert table(out) == table(reference)
    assert merge(out) == out  # merging again is harmless
    assert generate_traces(base_config(out, shard=0, num_shards=2)) == out  # so is running again
    assert table(out) == table(reference)


def test_rank_and_world_size_pick_the_shard(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    cfg = base_config(tmp_path)
    assert (cfg.shard, cfg.num_shards) == (1, 3)
    with pytest.raises(ValueError):
        base_config(tmp_path, shard=0)


def test_changed_settings_are_refused(reference):
    with pytest.raises(ValueError, match="other settings"):
        generate_traces(replace(base_config(reference, shard=0, num_shards=1), target_iou=0.9))


def test_sft_view_builds_overlay_prompt_and_completion(reference):
    traces = load_traces(reference)
    fmt = ActionFormat("int1000", iou_line=True)
    ds = to_sft_dataset(traces, action_format=fmt, prompt_style="qwen")
    assert len(ds) == sum(len(x) for x in traces["x"])
    ex, row = ds[0], traces[0]
    (image,) = ex["images"]
    assert image.size == (64, 64)
    system, user, assistant = ex["prompt"][0], ex["prompt"][1], ex["completion"][0]
    assert system["role"] == "system" and user["role"] == "user" and assistant["role"] == "assistant"
    assert user["content"][0] == {"type": "image"}
    assert f"<ref>{row['caption']}</ref>" in user["content"][1]["text"]
    answer = assistant["content"][0]["text"]
    assert answer.startswith(f"Current IOU: {round(row['iou_before'][0] * 100)}\n")
    parsed = parse_action_text(answer, fmt)
    assert parsed.action.positive == row["positive"][0]
    assert abs(parsed.action.x - row["x"][0]) <= 1e-3 and abs(parsed.action.y - row["y"][0]) <= 1e-3
    # the overlay is the stored image with the mask BEFORE the step blended in
    mask = np.asarray(row["masks"][0])
    np.testing.assert_array_equal(np.asarray(image), R.overlay_mask(np.asarray(row["image"]), mask))
    no_iou = to_sft_dataset(traces, action_format=ActionFormat("int1000", iou_line=False), prompt_style="qwen")
    assert no_iou[0]["completion"][0]["content"][0]["text"] == answer.split("\n", 1)[1]
    default = to_sft_dataset(traces)[0]["completion"][0]["content"][0]["text"]  # SegAgent's format by default
    assert default.startswith("Current IOU: ") and parse_action_text(default).action == parse_action_text(
        default, ActionFormat("decimal")).action
    batch = ds[:3]  # batched access works too (what trl's dataloader does)
    assert len(batch["images"]) == len(batch["prompt"]) == len(batch["completion"]) == min(3, len(ds))
    assert len(ds.select(range(2))) == 2 and ds.select(range(2))[1]["prompt"] == ds[1]["prompt"]


def test_images_regenerated_when_not_stored(reference, tmp_path):
    out = tmp_path / "noimg"
    generate_traces(base_config(out, shard=0, num_shards=1, store_images=False))
    without, stored = table(out), table(reference)
    assert all(v is None for v in without.pop("image"))
    stored.pop("image")
    assert without == stored
    a = to_sft_dataset(load_traces(out), prompt_style="llava")
    b = to_sft_dataset(load_traces(reference), prompt_style="llava")
    for i in range(min(3, len(a))):
        np.testing.assert_array_equal(np.asarray(a[i]["images"][0]), np.asarray(b[i]["images"][0]))
        assert a[i]["prompt"] == b[i]["prompt"] and a[i]["completion"] == b[i]["completion"]


@pytest.mark.slow
def test_torchrun_two_processes_merge_equal_one_process(reference, tmp_path):
    """Two real processes (torchrun sets RANK/WORLD_SIZE) produce the one-process result."""
    out = tmp_path / "torchrun"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "agents.cli", "traces", "--out", str(out), "--episodes", str(EPISODES), "--chunk-size", "2",
        "--max-clicks", "6", "--seed", "3", "--image-size", "64", "--initial-mix", "0.5,0.25,0.25",
        "--env-kwargs", '{"dataset_kwargs": {"image_size": 96}}', "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / METADATA).read_text())["merged"] is True
    assert table(out) == table(reference)


def test_training_overlay_matches_what_the_env_shows(reference):
    """The SFT input (stored image + stored mask) is exactly the env's ``overlay`` observation."""
    import gymnasium as gym

    traces = load_traces(reference)
    ds = to_sft_dataset(traces)
    k = next((i for i, s in enumerate(traces["initial_state"]) if s != "empty"), 0)
    row = traces[k]
    env = gym.make("SegAgent-Shapes-v0", split="train", max_clicks=6, initial_state=row["initial_state"],
                   image_size=64, dataset_kwargs={"image_size": 96})
    obs, _ = env.reset(seed=reset_seed_for(row["sample_index"], 3), options={"index": row["sample_index"]})
    env.close()
    np.testing.assert_array_equal(np.asarray(row["masks"][0]), obs["mask"] > 0)  # step 0: the env's initial mask
    first_step_of_k = sum(len(x) for x in traces["x"][:k])
    np.testing.assert_array_equal(np.asarray(ds[first_step_of_k]["images"][0]), obs["overlay"])


def test_no_target_items_end_with_no_object_from_every_initial_state(tmp_path):
    """An empty target on an empty mask has IoU 1, but the annotator's answer is "No Object Found"
    (not Finish): every no-target trace is one no_object step, whatever its initial state."""
    out = generate_traces(TraceConfig(out=str(tmp_path / "nt"), env_id="SegAgent-ShapesNoTarget-v0", episodes=40,
                                      max_clicks=3, env_kwargs={"image_size": 64}, progress=False))
    ds = load_from_disk(str(out))
    import gymnasium as gym

    import segenv  # noqa: F401

    data = gym.make("SegAgent-ShapesNoTarget-v0", split="train").unwrapped.dataset
    empty = {i for i in range(40) if not data[i].mask.any()}
    assert empty, "the fixture needs some no-target items"
    rows = {r["sample_index"]: r for r in ds}
    assert empty <= set(rows)
    for i in empty:
        assert rows[i]["kind"] == ["no_object"], (i, rows[i]["initial_state"], rows[i]["kind"])
    assert {rows[i]["initial_state"] for i in empty} >= {"empty"}
    assert all("no_object" not in rows[i]["kind"] for i in set(rows) - empty)
