"""SAM 3's text model as a text segmenter: the adapter, the env's ``initial_state="text"``, the
``sam3-text`` zero-click baseline through the harness, and the clear errors (issue #23).

Every model here is a tiny random ``Sam3Model`` built from a config with a word-level tokenizer
(``segenv.segmenters.tiny``): no weights, no network. Random weights score every instance low, so
the tests that need an instance lower the threshold to 0.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import segenv  # noqa: E402,F401
from segenv import render as R  # noqa: E402
from segenv.datasets.base import mask_box  # noqa: E402
from segenv.segmenters import TextMask, make_segmenter, make_text_segmenter  # noqa: E402
from segenv.segmenters.text import TEXT_SEGMENTERS, pick_instance  # noqa: E402
from segenv.segmenters.tiny import save_tiny_hf, save_tiny_sam3_text, tiny_hf_sam3_text, tiny_text_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def sam3_folder(tmp_path_factory):
    return save_tiny_sam3_text(str(tmp_path_factory.mktemp("sam3_text")), seed=0, image_size=112)


@pytest.fixture(scope="module")
def confident(sam3_folder):
    """The tiny text model with threshold 0: its best instance is always the answer."""
    return make_text_segmenter(f"sam3:{sam3_folder}", device="cpu", threshold=0.0)


class Counting:
    """A text segmenter wrapper that counts calls."""

    name = "counting"

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def segment(self, image, text):
        self.calls += 1
        return self.inner.segment(image, text)


def test_pick_instance_takes_the_best_score_that_reaches_the_threshold():
    assert pick_instance([0.2, 0.7, 0.9, 0.9, 0.4], 0.5) == (2, 3)  # the first of the tied best; 3 reach 0.5
    assert pick_instance([0.2, 0.49], 0.5) == (None, 0)
    assert pick_instance([], 0.5) == (None, 0)
    assert pick_instance([0.5], 0.5) == (0, 1)
    with pytest.raises(ValueError, match="finite"):
        pick_instance([0.3, float("nan")], 0.1)


def test_adapter_answers_the_highest_scoring_instance_of_the_model(sam3_folder, confident):
    """The adapter's mask is the model's best instance (score = class x presence probability),
    resized to the image and cut at 0.5; a threshold above every score gives an empty mask."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    image = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    for text in ("the small red circle", "the large blue star"):
        answer = confident.segment(image, text)
        with torch.no_grad():
            out = confident.model(**confident.inputs(image, text))
        scores = out.pred_logits[0].sigmoid() * out.presence_logits[0].sigmoid()
        best = int(scores.argmax())
        prob = F.interpolate(out.pred_masks[:, best:best + 1], size=(90, 130), mode="bilinear",
                             align_corners=False).sigmoid()[0, 0]
        assert answer.mask.shape == (90, 130) and answer.mask.dtype == bool
        assert np.array_equal(answer.mask, (prob > 0.5).numpy())
        assert answer.score == pytest.approx(float(scores[best]), abs=1e-6) and answer.num_instances == 8
    strict = make_text_segmenter(f"sam3:{sam3_folder}", device="cpu", threshold=1.0)
    empty = strict.segment(image, "the small red circle")
    assert not empty.mask.any() and empty.num_instances == 0 and 0.0 < empty.score < 1.0


def test_env_initial_state_text_starts_from_the_text_mask(confident):
    """reset() calls the text model once; the mask is its answer (at observation size), its box is the
    episode's box prompt, clicks then refine it; check_env passes."""
    from gymnasium.utils.env_checker import check_env

    counting = Counting(confident)
    env = gym.make("SegAgent-Shapes-v0", initial_state="text", text_segmenter=counting, image_size=64, max_clicks=2)
    obs, info = env.reset(seed=3, options={"index": 4})
    base = env.unwrapped
    sample = base.sample
    expected = confident.segment(sample.image, sample.text)
    assert counting.calls == 1 and expected.mask.any()
    assert np.array_equal(base.current_mask, expected.mask)
    assert np.array_equal(obs["mask"] > 0, R.resize_mask(expected.mask, 64))
    assert info["text_score"] == pytest.approx(expected.score) and info["text_instances"] == expected.num_instances
    assert np.array_equal(base._box, np.array(mask_box(expected.mask), np.float32))
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.5, 1.0], np.float32))
    assert counting.calls == 1 and len(info["clicks"]) == 1  # no second text call; the click used one step
    check_env(env.unwrapped, skip_render_check=True)


def test_env_text_start_with_an_empty_answer_has_no_prompt(sam3_folder):
    env = gym.make("SegAgent-Shapes-v0", initial_state="text", text_segmenter=f"sam3:{sam3_folder}",
                   text_segmenter_kwargs={"threshold": 1.0, "device": "cpu"}, image_size=64)
    obs, info = env.reset(seed=0)
    assert not obs["mask"].any() and info["text_instances"] == 0 and env.unwrapped._box is None


def test_sam3_text_baseline_runs_through_the_harness_with_zero_clicks(tmp_path, sam3_folder):
    """--agent sam3-text --model FOLDER: the env starts from the text mask, the agent ends at step 1
    (the tiny random model answers nothing: NoObject, an empty mask, IoU 0), and the summary says so."""
    from benchmarks.run import main as run_main

    out = tmp_path / "sam3.json"
    summary = run_main(["--agent", "sam3-text", "--model", sam3_folder, "--episodes", "3", "--max-clicks", "3",
                        "--image-size", "64", "--no-progress", "--out", str(out)])
    assert summary["initial_state"] == "text" and summary["text_segmenter"] == f"sam3:{sam3_folder}"
    rows = [json.loads(line) for line in out.with_suffix(".episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    seg = make_text_segmenter(f"sam3:{sam3_folder}", device="cpu")
    dataset = gym.make("SegAgent-Shapes-v0").unwrapped.dataset
    for row in rows:
        sample = dataset[row["sample_index"]]
        assert not seg.segment(sample.image, sample.text).mask.any()  # the recorded answer: nothing
        assert row["end_action"] == "no_object" and len(row["steps"]) == 1 and row["steps"][0]["iou"] == 0.0
    assert summary["miou"] == 0.0 and summary["clicks_used"] == 0.0 and summary["model"] == sam3_folder


def test_text_baseline_finishes_on_a_non_empty_answer(tmp_path):
    """With an answer, the baseline keeps it (Finish at step 1): mIoU per click is flat at its IoU."""
    from benchmarks.run import main as run_main

    class Box:
        name = "box_text"

        def segment(self, image, text):
            mask = np.zeros(image.shape[:2], bool)
            mask[40:120, 60:160] = True
            return TextMask(mask, 0.9, 1)

    TEXT_SEGMENTERS.add("box_text_test", lambda **_: Box())
    try:
        summary = run_main(["--agent", "sam3-text", "--text-segmenter", "box_text_test", "--episodes", "2",
                            "--max-clicks", "3", "--image-size", "64", "--no-progress", "--out", str(tmp_path / "b.json")])
    finally:
        TEXT_SEGMENTERS.remove("box_text_test")
    rows = [json.loads(line) for line in (tmp_path / "b.episodes.jsonl").read_text().splitlines()]
    assert all(r["end_action"] == "finish" and len(r["steps"]) == 1 for r in rows)
    curve = summary["miou_per_click"]
    assert 0.0 < curve[0] < 1.0 and curve == [curve[0]] * 3 and summary["clicks_used"] == 0.0


def test_clear_errors(tmp_path, sam3_folder):
    from benchmarks.run import main as run_main

    with pytest.raises(ValueError, match="text_segmenter='sam3:"):
        gym.make("SegAgent-Shapes-v0", initial_state="text")
    with pytest.raises(FileNotFoundError, match="hub id"):
        make_text_segmenter("sam3:facebook/sam3")
    tracker = save_tiny_hf(str(tmp_path / "tracker"), "sam3_tracker", image_size=56)
    with pytest.raises(ValueError, match="model_type 'sam3'.*Sam3Model"):
        make_text_segmenter(f"sam3:{tracker}")
    with pytest.raises(ValueError, match="sam3_tracker.*--text-segmenter sam3:"):
        make_segmenter(f"hf:{sam3_folder}")
    no_tok = tmp_path / "no_tokenizer"
    tiny_hf_sam3_text(image_size=56).save_pretrained(str(no_tok))
    with pytest.raises(ValueError, match="tokenizer"):
        make_text_segmenter(f"sam3:{no_tok}")
    with pytest.raises(TypeError, match="segment"):
        make_text_segmenter(object())
    with pytest.raises(TypeError, match="Sam3Model"):
        from segenv.segmenters.hf_sam3_text import HFSam3TextSegmenter

        HFSam3TextSegmenter(model=object(), tokenizer=tiny_text_tokenizer())
    with pytest.raises(ValueError, match="--model"):
        run_main(["--agent", "sam3-text", "--episodes", "1", "--no-progress", "--out", str(tmp_path / "x.json")])
    with pytest.raises(ValueError, match="--initial-state text"):
        run_main(["--agent", "sam3-text", "--model", sam3_folder, "--initial-state", "box", "--episodes", "1",
                  "--no-progress", "--out", str(tmp_path / "y.json")])
