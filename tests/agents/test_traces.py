"""agents.training.traces: oracle traces (D_traj), chunked/sharded/resumable, and the SFT view."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datasets")

from agents.mllm.prompt import ActionFormat, parse_action_text  # noqa: E402
from agents.training.trace_sft import load_traces  # noqa: E402
from agents.training.trace_store import shard_dir, unpack_mask  # noqa: E402
from agents.training.traces import (  # noqa: E402
    INITIAL_STATES,
    TraceConfig,
    generate_traces,
    initial_state_for,
    merge,
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
    return load_traces(path, raw=True).to_dict()


def images_table(out: Path) -> dict:
    from datasets import load_from_disk

    return load_from_disk(str(out / "merged" / "images")).to_dict()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, one shard: the result every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("traces") / "one"
    path = generate_traces(base_config(out, shard=0, num_shards=1))
    assert path == out / "merged"
    return out


def test_traces_strictly_improve_and_stop(reference):
    rows = load_traces(reference, raw=True).to_pandas()
    assert len(rows) > 0
    assert set(rows["sample_index"]) <= set(range(EPISODES))
    assert set(rows["initial_state"]) <= set(INITIAL_STATES)
    for _, trace in rows.groupby("sample_index"):
        trace = trace.sort_values("step")
        assert list(trace["step"]) == list(range(len(trace)))
        before, after = trace["iou_before"].to_numpy(), trace["iou_after"].to_numpy()
        assert np.all(after > before)  # every kept click strictly improves
        assert np.all(before[1:] == after[:-1])  # ... on the best so far (the previous kept step)
        assert np.all(before < 0.98)  # the trace ended once the target was reached
        assert len(trace) <= 6
        if trace["initial_state"].iloc[0] == "empty":
            assert before[0] == 0.0
    first = rows.iloc[0]
    mask = unpack_mask(first["mask"], int(first["mask_size"]))
    assert mask.shape == (64, 64) and mask.dtype == bool


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
    cfg = base_config(out, shard=0, num_shards=1)
    generate_traces(cfg)
    sdir = shard_dir(out, 0, 1)
    chunks = sorted(sdir.glob("chunk-*"))
    assert len(chunks) == 3  # 6 samples in chunks of 2
    # a kill -9 mid-chunk: the last chunk never got renamed into place, its tmp dir is left over
    shutil.rmtree(chunks[-1])
    tmp = sdir / f".tmp-{chunks[-1].name}-12345"
    (tmp / "steps").mkdir(parents=True)
    (tmp / "steps" / "garbage.arrow").write_bytes(b"\x00partial")
    before = {c.name: (c / "chunk.json").read_text() for c in chunks[:-1]}
    path = generate_traces(cfg)
    assert path == out / "merged"
    assert not list(sdir.glob(".tmp-*"))
    # finished chunks were kept as they were, only the missing one was redone
    assert {c.name: (c / "chunk.json").read_text() for c in chunks[:-1]} == before
    assert table(out) == table(reference)
    assert images_table(out) == images_table(reference)


def test_two_shards_merged_equal_one_process(reference, tmp_path):
    out = tmp_path / "sharded"
    first = generate_traces(base_config(out, shard=1, num_shards=2))
    assert first == shard_dir(out, 1, 2)  # the other shard is not done: no merge yet
    assert not (out / "merged").exists()
    assert generate_traces(base_config(out, shard=0, num_shards=2)) == out / "merged"
    assert table(out) == table(reference)
    assert images_table(out) == images_table(reference)
    assert merge(out) == out / "merged"  # merging again is harmless
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
    raw = load_traces(reference, raw=True)
    fmt = ActionFormat("int1000", iou_line=True)
    ds = load_traces(reference, action_format=fmt, prompt_style="qwen")
    assert len(ds) == len(raw)
    ex, row = ds[0], raw[0]
    (image,) = ex["images"]
    assert image.size == (64, 64)
    system, user, assistant = ex["prompt"][0], ex["prompt"][1], ex["completion"][0]
    assert system["role"] == "system" and user["role"] == "user" and assistant["role"] == "assistant"
    assert user["content"][0] == {"type": "image"}
    assert f"<ref>{row['caption']}</ref>" in user["content"][1]["text"]
    answer = assistant["content"][0]["text"]
    assert answer.startswith(f"Current IOU: {round(row['iou_before'] * 100)}\n")
    parsed = parse_action_text(answer, fmt)
    assert parsed.action.positive == row["positive"]
    assert abs(parsed.action.x - row["x"]) <= 1e-3 and abs(parsed.action.y - row["y"]) <= 1e-3
    # the overlay is the stored image with the mask BEFORE the step blended in
    from datasets import load_from_disk

    from agents.training.trace_store import _decode_png

    imgs = load_from_disk(str(reference / "merged" / "images")).to_dict()
    stored = _decode_png(imgs["image"][imgs["sample_index"].index(row["sample_index"])])
    mask = unpack_mask(row["mask"], row["mask_size"])
    np.testing.assert_array_equal(np.asarray(image), R.overlay_mask(stored, mask))
    batch = ds[:3]  # batched access works too (what trl's dataloader does)
    assert len(batch["images"]) == len(batch["prompt"]) == len(batch["completion"]) == min(3, len(ds))


def test_images_regenerated_when_not_stored(reference, tmp_path):
    out = tmp_path / "noimg"
    generate_traces(base_config(out, shard=0, num_shards=1, store_images=False))
    assert not (out / "merged" / "images").exists()
    assert table(out) == table(reference)
    a = load_traces(out, prompt_style="llava")
    b = load_traces(reference, prompt_style="llava")
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
    assert (shard_dir(out, 0, 2) / "DONE.json").exists() and (shard_dir(out, 1, 2) / "DONE.json").exists()
    assert table(out) == table(reference)


def test_training_overlay_matches_what_the_env_shows(reference):
    """The SFT input (stored image + stored mask) is exactly the env's ``overlay`` observation."""
    import gymnasium as gym

    raw = load_traces(reference, raw=True)
    ds = load_traces(reference)
    firsts = [i for i in range(len(raw)) if raw[i]["step"] == 0]  # masks = the env's initial masks
    k = next((i for i in firsts if raw[i]["initial_state"] != "empty"), firsts[0])
    row = raw[k]
    from agents.training.traces import reset_seed_for

    env = gym.make("SegAgent-Shapes-v0", split="train", max_clicks=6, initial_state=row["initial_state"],
                   image_size=64, dataset_kwargs={"image_size": 96})
    obs, _ = env.reset(seed=reset_seed_for(row["sample_index"], 3), options={"index": row["sample_index"]})
    env.close()
    np.testing.assert_array_equal(unpack_mask(row["mask"], 64), obs["mask"] > 0)
    np.testing.assert_array_equal(np.asarray(ds[k]["images"][0]), obs["overlay"])
