"""The tiny pointer-readout VLM: build/save/load through the Auto classes, generate, train a bit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import agents  # noqa: E402,F401  (registers the tiny VLM with the Auto classes)
from agents.mllm.prompt import ActionFormat, parse_action_text  # noqa: E402
from agents.mllm.tiny_build import build_tiny_vlm  # noqa: E402
from segenv.actions import Click  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, pointer_dim=16,
             cnn_channels=(8, 8, 16), loc_grid=14, image_size=112)
ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "agents" / "mllm" / "checkpoints" / "tiny"
CHECKPOINT28 = ROOT / "agents" / "mllm" / "checkpoints" / "tiny28"  # the 28x28-pointer variant (docs/tiny_vlm.md)
# the shipped checkpoint's greedy answers on the empty-mask observations (224 px) of test items
# 0..5: pinned so that refactoring the model code cannot change them
SHIPPED_ANSWERS = {i: f"Current IOU: 0\nPositive point: <loc_{k}>" for i, k in
                   {0: 80, 1: 78, 2: 146, 3: 43, 4: 109, 5: 131}.items()}
SHIPPED28_ANSWERS = {i: f"Current IOU: 0\nPositive point: <loc_{k}>" for i, k in
                     {0: 328, 1: 325, 2: 573, 3: 199, 4: 443, 5: 541}.items()}
SHIPPED = pytest.mark.parametrize("checkpoint, answers", [(CHECKPOINT, SHIPPED_ANSWERS), (CHECKPOINT28, SHIPPED28_ANSWERS)],
                                  ids=["tiny", "tiny28"])
ANSWER = re.compile(r"^Current IOU: (\d+)\n(?:(Positive|Negative) point: <loc_(\d+)>|Finish|No Object Found)$")


def _messages(text: str) -> list:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def _inputs(processor, overlay: np.ndarray, text: str):
    from PIL import Image

    return processor.apply_chat_template(_messages(text), add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt", images=[Image.fromarray(overlay)])


def _new_text(processor, out, inputs) -> str:
    new = out[0, inputs["input_ids"].shape[1]:]
    text = processor.tokenizer.decode(new, skip_special_tokens=False)
    return text.replace("</s>", "").replace("<pad>", "").strip()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return build_tiny_vlm(str(tmp_path_factory.mktemp("tiny")), **SMALL)


@pytest.fixture(scope="module")
def loaded(saved):
    return AutoProcessor.from_pretrained(saved), AutoModelForImageTextToText.from_pretrained(saved)


def test_save_load_generate(saved, loaded):
    processor, model = loaded
    assert type(model).__name__ == "TinySegForClicks"
    assert model.config.segagent_coord_format == "loc" and model.config.segagent_loc_grid == 14
    assert model.config.segagent_prompt_style == "short"
    overlay = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    inputs = _inputs(processor, overlay, "the small blue circle")
    ids = inputs["input_ids"][0].tolist()
    toks = processor.tokenizer.convert_ids_to_tokens(ids)
    # caption before the image tokens, then the answer marker
    assert toks[:5] == ["<s>", "the", "small", "blue", "circle"] and toks[-1] == "<ans>"
    assert toks.count("<image>") == model.config.num_image_tokens == 49
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(_new_text(processor, out, inputs), str)


def test_answer_tokens_roundtrip(loaded):
    processor, _ = loaded
    tok = processor.tokenizer
    ids = tok("Positive point: <loc_195></s>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3
    assert tok.decode(ids, skip_special_tokens=False) == "Positive point: <loc_195></s>"
    # the one action grammar (agents.mllm.prompt) reads the tiny model's answers
    parsed = parse_action_text("Negative point: <loc_15>", ActionFormat("loc", loc_grid=14))
    assert parsed.action == Click(1.5 / 14, 1.5 / 14, False)


def test_pointer_logits_shape(loaded):
    processor, model = loaded
    overlay = np.zeros((224, 224, 3), np.uint8)
    inputs = _inputs(processor, overlay, "the red object")
    with torch.no_grad():
        out = model(**inputs)
    b, t = inputs["input_ids"].shape
    assert out.logits.shape == (b, t, model.config.vocab_size)
    g2 = model.config.loc_grid ** 2
    with torch.no_grad():
        f4, f8, f16 = model.vision(inputs["pixel_values"])
        h = torch.randn(b, t, model.config.hidden_size)
        ptr = model.pointer_logits(h, f8, torch.randn(b, model.config.num_image_tokens, model.config.hidden_size))
    assert f4.shape[-2:] == (28, 28) and f8.shape[-2:] == (14, 14) and f16.shape[-2:] == (7, 7)
    assert ptr.shape == (b, t, g2)


def test_a_grid_the_keys_cannot_serve_is_refused():
    with pytest.raises(ValueError, match="loc_grid 14 or 28"):
        build_tiny_vlm(None, **{**SMALL, "loc_grid": 20})


def test_token_row_map_lines_up_shared_tokens_and_maps_a_finer_grid_to_its_parent_cells():
    from agents.training.train_tiny import token_row_map

    src = {"<s>": 0, "<loc_0>": 1, "<loc_1>": 2, "<loc_2>": 3, "<loc_3>": 4, "Finish": 5}  # 2x2 grid
    dst = {"<s>": 0, **{f"<loc_{k}>": 1 + k for k in range(16)}, "Finish": 17, "new": 18}  # 4x4 grid
    rows = token_row_map(dst, src)
    assert rows[0] == 0 and rows[17] == 5 and 18 not in rows
    # 4x4 cell (row 1, col 2) has its centre in 2x2 cell (0, 1); (3, 0) in (1, 0)
    assert rows[1 + 1 * 4 + 2] == src["<loc_1>"] and rows[1 + 3 * 4 + 0] == src["<loc_2>"]


def test_a_28x28_pointer_warm_started_from_a_14x14_one_keeps_its_iou_head_and_reads_stride_4_cells(saved):
    """The stride-4 grid: 784 loc tokens; a warm start from the 14x14 checkpoint lines the token rows
    up by text (every IoU / end token id shifts by 588), so the stated IoU is unchanged."""
    from agents.training.train_tiny import warm_start

    src_proc = AutoProcessor.from_pretrained(saved)
    src = AutoModelForImageTextToText.from_pretrained(saved).float().eval()
    model, proc = build_tiny_vlm(None, seed=1, **{**SMALL, "loc_grid": 28})
    counts = warm_start(model, saved, proc.tokenizer)
    model.eval()
    assert counts["skipped"] == 0 and hasattr(model, "key4")
    overlay = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    a, b = _inputs(src_proc, overlay, "the red circle"), _inputs(proc, overlay, "the red circle")
    assert torch.equal(a["input_ids"], b["input_ids"])  # the prompt's words keep their ids
    with torch.no_grad():
        la, lb = src(**a).logits[0, -1], model(**b).logits[0, -1]
    iou_a, iou_b = (m.config.iou_token_offset for m in (src, model))
    assert iou_b - iou_a == 28 * 28 - 14 * 14
    assert torch.allclose(la[iou_a:iou_a + 101], lb[iou_b:iou_b + 101], atol=1e-5)
    assert lb[model.config.loc_token_offset:model.config.loc_token_offset + 784].isfinite().all()
    assert model.config.pointer_stride == 4 and src.config.pointer_stride == 8
    saved28 = str(Path(saved).parent / "tiny28")
    model.save_pretrained(saved28)
    proc.save_pretrained(saved28)
    again = AutoModelForImageTextToText.from_pretrained(saved28).float().eval()
    with torch.no_grad():
        assert torch.allclose(again(**b).logits, model(**b).logits, atol=1e-2)  # fp32 -> saved -> loaded


def test_train_tiny_few_steps_lower_the_loss_and_evaluate_through_the_harness(tmp_path):
    """train_tiny: examples -> trl (the model's own loss) for a few steps -> harness evaluation -> checkpoint."""
    pytest.importorskip("trl")
    from agents.training.tiny_data import TinyDataConfig, build_examples
    from agents.training.train_tiny import TinyTrainConfig, train

    first = build_examples(TinyDataConfig(out=str(tmp_path / "first"), kind="first", stop=8, progress=False))
    assert len(first) == 8 and first[0]["image"].size == (112, 112) and set(first["kind"]) == {"first"}
    small = {k: (list(v) if isinstance(v, tuple) else v) for k, v in SMALL.items()}
    config = TinyTrainConfig(out=str(tmp_path / "run"), first_data=str(tmp_path / "first"), max_steps=15, batch_size=4,
                             lr=3e-3, warmup_steps=1, log_every=1, eval_episodes=2, max_clicks=2, threads=1,
                             flip_aug=True, **small)
    history = train(config)
    losses = [r["loss"] for r in history["train"]]
    assert len(losses) == 15
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    (result,) = history["eval"]  # evaluated once, at the end, on 2 harness episodes of 2 clicks
    assert result["episodes"] == 2 and len(result["miou"]) == 2 and 0.0 <= result["invalid_rate"] <= 1.0
    model = AutoModelForImageTextToText.from_pretrained(config.out)  # the best (here: only) checkpoint
    assert type(model).__name__ == "TinySegForClicks" and model.config.hidden_size == 32
    assert (Path(config.out) / "training_history.json").exists() and (Path(config.out) / "learning_curve.png").exists()


def test_training_refuses_examples_labelled_on_another_grid(tmp_path):
    """A cell index means another place on another grid: a 14x14-labelled folder cannot train a 28x28 pointer."""
    import json

    from agents.training.tiny_data import EXAMPLES_META, TinyDataConfig, build_examples, example_grid
    from agents.training.train_tiny import TinyTrainConfig, train

    build_examples(TinyDataConfig(out=str(tmp_path / "first"), kind="first", stop=3, progress=False))
    meta = json.loads((tmp_path / "first" / EXAMPLES_META).read_text())
    assert meta["grid"] == 14 and meta["examples"] == 3 and example_grid(str(tmp_path / "first")) == 14
    small = {k: (list(v) if isinstance(v, tuple) else v) for k, v in {**SMALL, "loc_grid": 28}.items()}
    config = TinyTrainConfig(out=str(tmp_path / "run"), first_data=str(tmp_path / "first"), max_steps=2, batch_size=2,
                             eval_episodes=0, threads=1, **small)
    with pytest.raises(ValueError, match=r"first \(14x14\).*--grid 28"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_first_examples_answer_no_object_on_items_that_name_an_absent_object():
    """With no_target_fraction, empty-target items become `No Object Found` rows (IoU 1: both masks
    empty) on the same images as the real items, whose rows stay first clicks (issue #21)."""
    from agents.training.tiny_data import TinyDataConfig, build_examples

    config = TinyDataConfig(kind="first", stop=30, no_target_fraction=0.5, progress=False)
    ds = build_examples(config)
    plain = build_examples(TinyDataConfig(kind="first", stop=30, progress=False))
    assert len(ds) == len(plain) == 30
    no_object = [i for i, a in enumerate(ds["action"]) if a == "no_object"]
    assert 5 <= len(no_object) <= 25 and set(ds["action"]) == {"click", "no_object"}
    for i in no_object:
        assert ds[i]["iou"] == 1.0 and ds[i]["text"] != plain[i]["text"]
        assert np.array_equal(np.asarray(ds[i]["image"]), np.asarray(plain[i]["image"]))
    clicks = [i for i in range(30) if i not in no_object]
    assert [ds[i]["cell"] for i in clicks] == [plain[i]["cell"] for i in clicks]


def test_an_item_range_past_the_split_is_a_clear_error_and_writes_nothing(tmp_path):
    """`--start` past the split's end used to save an empty dataset that `train_tiny` then failed
    to load with an IndexError deep in `datasets`; now it is refused by name."""
    from agents.training.tiny_data import TinyDataConfig, build_examples

    out = tmp_path / "first"
    with pytest.raises(ValueError, match="past the split's end"):
        build_examples(TinyDataConfig(out=str(out), kind="first", start=10**7, stop=10**7 + 5, progress=False))
    assert not out.exists()


def test_later_click_examples_come_from_harness_episodes():
    """Observations before each strictly improving cell-oracle click, labelled with that click."""
    from agents.training.tiny_data import TinyDataConfig, build_examples, cell_to_xy

    ds = build_examples(TinyDataConfig(kind="later", stop=6, max_clicks=3, progress=False))
    assert len(ds) > 0 and set(ds["kind"]) == {"later"}
    assert all(0 <= c < 14 * 14 for c in ds["cell"]) and all(s <= 2 for s in ds["step"])
    target = build_examples(TinyDataConfig(kind="later", stop=6, max_clicks=3, later_labels="target", progress=False))
    assert all(target["positive"]) and target["sample_index"] == ds["sample_index"]
    assert cell_to_xy(15, 14) == pytest.approx((1.5 / 14, 1.5 / 14))


def test_mask_examples_are_random_point_masks_labelled_by_the_oracle_with_their_true_iou():
    """The PRM's data: masks of many qualities from random GT-box points, each with its true IoU."""
    import gymnasium as gym

    from agents.training.tiny_data import TinyDataConfig, build_examples, oracle_label
    from segenv import render as R

    cfg = TinyDataConfig(kind="masks", stop=4, masks_per_item=3, min_points=1, max_points=6, progress=False)
    ds = build_examples(cfg)
    assert len(ds) == 12 and set(ds["kind"]) == {"masks"} and ds["sample_index"] == [i for i in range(4) for _ in range(3)]
    assert len(set(round(v, 4) for v in ds["iou"])) > 3  # masks of different qualities
    assert set(ds["action"]) <= {"click", "finish"}
    again = build_examples(cfg)
    assert again["iou"] == ds["iou"] and again["cell"] == ds["cell"]  # seeded
    # the label is what the oracle answers on that very mask (rebuild item 0's first mask the same way)
    env = gym.make("SegAgent-Shapes-v0", split="train", image_size=cfg.obs_size, initial_state="points")
    rng = np.random.default_rng(cfg.seed * 1_000_003 + cfg.start)
    env.unwrapped.initial_points = int(rng.integers(cfg.min_points, cfg.max_points + 1))
    obs, info = env.reset(seed=int(rng.integers(2**31)), options={"index": 0})
    assert info["iou"] == pytest.approx(ds["iou"][0], abs=1e-6)
    mask = obs["mask"] > 0
    action, positive, cell = oracle_label(R.resize_mask(info["gt_mask"], mask.shape[0]), mask, info["iou"], 14, 0.98)
    assert (action, positive, cell) == (ds["action"][0], ds["positive"][0], ds["cell"][0])
    with pytest.raises(ValueError, match="min_points"):
        TinyDataConfig(kind="masks", min_points=5, max_points=2)


def test_wrong_object_examples_are_masks_of_a_distractor_with_their_true_iou():
    """The PRM's wrong-object data: clean masks of a non-target object (IoU near 0), seeded, each
    labelled with what the oracle answers on it."""
    from agents.training.tiny_data import TinyDataConfig, build_examples
    from agents.training.tiny_wrong_object import deepest_pixel

    cfg = TinyDataConfig(kind="wrong_object", split="val", stop=6, masks_per_item=2, progress=False)
    ds = build_examples(cfg)
    assert len(ds) == 12 and set(ds["kind"]) == {"wrong_object"}
    iou = np.array(ds["iou"])
    assert (iou < 0.1).mean() >= 0.5 and iou.max() < 0.98  # mostly the wrong object alone, never the right mask
    assert set(ds["action"]) == {"click"}  # the oracle always has something to fix
    assert not all(ds["positive"])  # it removes the distractor with negative clicks
    again = build_examples(cfg)
    assert again["iou"] == ds["iou"] and again["cell"] == ds["cell"]  # seeded
    square = np.zeros((9, 9), bool)
    square[2:7, 2:7] = True
    assert deepest_pixel(square) == (4, 4)
    with pytest.raises(ValueError, match="kind must be one of"):
        TinyDataConfig(kind="wrong_objects")


def test_trl_trains_it_with_the_models_own_loss(saved, tmp_path):
    """trl's default fused LM head multiplies backbone states by one output matrix, which a
    per-image pointer is not: the SFT module picks the trainer whose loss is the model's own."""
    trl = pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from agents.training.sft import _trainer_class

    processor = AutoProcessor.from_pretrained(saved)
    model = AutoModelForImageTextToText.from_pretrained(saved)
    rng = np.random.default_rng(0)
    rows = {
        "images": [[Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))] for _ in range(4)],
        "prompt": [_messages(t) for t in ["the circle", "the red object", "the star", "the cross"]],
        "completion": [[{"role": "assistant", "content": [{"type": "text", "text": f"Positive point: <loc_{k}>"}]}]
                       for k in (3, 50, 100, 150)],
    }
    ds = datasets.Dataset.from_dict(rows)
    args = trl.SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-3,
                         bf16=False, use_cpu=True, gradient_checkpointing=False, max_length=None, report_to=[],
                         logging_steps=1, save_strategy="no", remove_unused_columns=False, dataloader_num_workers=0)
    trainer_class = _trainer_class(model, "auto")
    assert trainer_class is not trl.SFTTrainer and issubclass(trainer_class, trl.SFTTrainer)
    trainer = trainer_class(model=model, args=args, train_dataset=ds, processing_class=processor)
    batch = trainer.data_collator([ds[0], ds[1]])
    labels = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert processor.tokenizer.decode(labels) == "Positive point: <loc_3></s>"  # completion-only targets
    with torch.no_grad():
        assert float(trainer.compute_loss(model, dict(batch))) == pytest.approx(float(model(**batch).loss), rel=1e-5)
    result = trainer.train()
    assert np.isfinite(result.training_loss)


@pytest.mark.skipif(not (CHECKPOINT / "config.json").exists(), reason="no shipped checkpoint")
def test_auto_classes_load_the_checkpoint_after_import_agents():
    """A fresh interpreter: ``import agents`` alone makes the Auto classes know the tiny VLM."""
    code = (
        "import sys, agents\n"
        "from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor\n"
        "path = sys.argv[1]\n"
        "print(type(AutoConfig.from_pretrained(path)).__name__, type(AutoProcessor.from_pretrained(path)).__name__,\n"
        "      type(AutoModelForImageTextToText.from_pretrained(path)).__name__)\n"
        "print('agents.mllm.tiny' in sys.modules)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, str(CHECKPOINT)], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["TinySegConfig", "LlavaProcessor", "TinySegForClicks", "True"]


@SHIPPED
def test_shipped_checkpoint_clicks(checkpoint, answers):
    import gymnasium as gym

    import segenv  # noqa: F401

    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    size = sum(f.stat().st_size for f in checkpoint.iterdir() if f.is_file())
    assert size < 20e6
    assert model.config.segagent_iou_line  # SegAgent's answer: the Current IOU line, then the action
    assert model.config.segagent_loc_grid == {CHECKPOINT: 14, CHECKPOINT28: 28}[checkpoint]
    env = gym.make("SegAgent-Shapes-v0", split="test", max_clicks=5, image_size=224)
    for index, answer in answers.items():
        obs, _ = env.reset(seed=index, options={"index": index})
        inputs = _inputs(processor, obs["image"], obs["text"])
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        text = _new_text(processor, out, inputs)
        assert ANSWER.match(text), text
        assert text == answer, index


@SHIPPED
def test_shipped_checkpoint_removes_a_spill_with_negative_clicks(checkpoint, answers):
    """#13: on masks that spill over the background (the ground truth dilated by 12 px), the shipped
    policy answers negative clicks, in the false-positive region. (It also answers Finish on some of
    these uniformly grown masks, which clicknet never makes: docs/tiny_vlm.md, limits.)"""
    import cv2
    import gymnasium as gym

    import segenv  # noqa: F401
    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from segenv import render as R
    from segenv.actions import Click

    policy = MLLMPolicy(MLLMPolicyConfig(model_path=str(checkpoint)))
    env = gym.make("SegAgent-Shapes-v0", split="test", image_size=224)
    negatives, in_fp = 0, 0
    for index in range(12):
        obs, _ = env.reset(seed=index, options={"index": index})
        gt = R.resize_mask(env.unwrapped.sample.mask, 224)
        spill = cv2.dilate(gt.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
        overlay = R.overlay_mask(obs["image"], spill.astype(np.uint8) * 255, R.COLORS["green"], 0.5)
        action = policy.act({"overlay": overlay, "text": obs["text"]}, {})
        assert policy.last_iou is not None  # the Current IOU line is always there
        if isinstance(action, Click) and not action.positive:
            negatives += 1
            in_fp += bool((spill & ~gt)[min(int(action.y * 224), 223), min(int(action.x * 224), 223)])
    assert negatives >= 3, negatives
    assert in_fp >= 0.75 * negatives, (in_fp, negatives)


def test_iou_and_end_tokens_roundtrip(loaded):
    """SegAgent's PRM line and the end answers are one token each; the one grammar reads them."""
    processor, model = loaded
    tok = processor.tokenizer
    fmt = ActionFormat("loc", loc_grid=14, iou_line=True)
    for text, iou, n_tokens in (("Current IOU: 74\nNegative point: <loc_87>", 0.74, 3), ("Current IOU: 100\nFinish", 1.0, 2),
                                ("Current IOU: 0\nNo Object Found", 0.0, 2), ("Current IOU: 9\nPositive point: <loc_0>", 0.09, 3)):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == n_tokens, (text, ids)
        assert tok.decode(ids, skip_special_tokens=False) == text
        assert parse_action_text(text, fmt).iou == pytest.approx(iou)
    assert model.config.segagent_iou_line and tok.convert_tokens_to_ids("Current IOU: 0\n") == model.config.iou_token_offset


def test_iou_loss_is_soft_over_ordered_bins(loaded):
    """The IoU token's loss is a Gaussian over the bins: one bin off costs less than ten bins off,
    and the target bin itself costs least; other tokens keep the ordinary cross-entropy."""
    _, model = loaded
    off, v = model.config.iou_token_offset, model.config.vocab_size
    labels = torch.tensor([[off + 50]])

    def loss_at(bin_: int) -> float:
        logits = torch.zeros(1, 1, v)
        logits[0, 0, off + bin_] = 12.0
        return float(model.answer_loss(logits, labels))

    assert loss_at(50) < loss_at(51) < loss_at(60)
    plain = torch.tensor([[5]])
    logits = torch.randn(1, 1, v)
    assert float(model.answer_loss(logits, plain)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[0], plain[0])), rel=1e-5)


def test_examples_from_traces_hold_negative_clicks_iou_and_finish(tmp_path):
    """The shipped model's data: every kept D_traj step (negative clicks included) with the IoU of the
    observed mask and the Finish end step; each click's cell lies in the oracle's error region."""
    from agents.training.tiny_data import TinyDataConfig, build_examples, cell_to_xy
    from agents.training.traces import TraceConfig, generate_traces
    from segenv import render as R

    traces = generate_traces(TraceConfig(out=str(tmp_path / "tr"), episodes=24, max_clicks=4, seed=1, progress=False,
                                         initial_mix=(0.0, 0.5, 0.5), env_kwargs={"image_size": 112}))
    ds = build_examples(TinyDataConfig(kind="traces", traces=str(traces), progress=False))
    assert set(ds["kind"]) == {"traces"} and {"click", "finish"} <= set(ds["action"])
    clicks = ds.filter(lambda r: r["action"] == "click")
    assert 0 < sum(not p for p in clicks["positive"]) < len(clicks)  # negative AND positive clicks
    assert all(0.0 <= x <= 1.0 for x in ds["iou"]) and max(ds["iou"]) > 0.5
    import gymnasium as gym

    env = gym.make("SegAgent-Shapes-v0", split="train", image_size=112)
    stored = load_traces_rows(traces)
    for row in clicks.select(range(min(10, len(clicks)))):
        gt = R.resize_mask(env.unwrapped.dataset[row["sample_index"]].mask, 112)
        mask = stored[row["sample_index"]][row["step"]]
        x, y = cell_to_xy(row["cell"], 14)
        r, c = int(y * 112), int(x * 112)
        region = (gt & ~mask) if row["positive"] else (~gt & mask)
        assert region[r, c] or not region[(np.arange(14) * 8 + 4)][:, (np.arange(14) * 8 + 4)].any()
    env.close()
    with pytest.raises(ValueError, match="needs --traces"):
        TinyDataConfig(kind="traces")


def load_traces_rows(path) -> dict:
    from agents.training.trace_sft import load_traces

    return {r["sample_index"]: [np.asarray(m).astype(bool) for m in r["masks"]] for r in load_traces(path)}


def test_allow_end_false_bans_finish_and_no_object(saved):
    """MLLMPolicyConfig(allow_end=False): a model that wants to answer Finish clicks instead."""
    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from segenv.actions import Finish

    processor = AutoProcessor.from_pretrained(saved)
    model = AutoModelForImageTextToText.from_pretrained(saved)
    finish = processor.tokenizer.convert_tokens_to_ids("Finish")
    forward = model.forward

    def eager_to_finish(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits[..., finish] += 1e4
        return out

    model.forward = eager_to_finish
    obs = {"overlay": np.zeros((64, 64, 3), np.uint8), "text": "the red circle"}
    free = MLLMPolicy(MLLMPolicyConfig(model_path=saved), model=model, processor=processor)
    assert isinstance(free.act(obs, {}), Finish)
    banned = MLLMPolicy(MLLMPolicyConfig(model_path=saved, allow_end=False), model=model, processor=processor)
    assert [finish] in banned._banned and [processor.tokenizer.convert_tokens_to_ids("No Object Found")] in banned._banned
    banned.act(obs, {})
    assert "Finish" not in banned.last_output and "No Object" not in banned.last_output


def test_dagger_examples_label_the_policys_own_states_with_the_oracle(tmp_path):
    """Every state the policy visits becomes an example labelled with the oracle's answer there."""
    from agents.training.tiny_data import TinyDataConfig, build_examples, oracle_label

    ds = build_examples(TinyDataConfig(kind="dagger", policy=str(CHECKPOINT), stop=3, max_clicks=2,
                                       initial_states=["points"], progress=False))
    assert set(ds["kind"]) == {"dagger"} and sorted(set(ds["sample_index"])) == [0, 1, 2]
    for i in range(3):  # one example per step the policy took (2 clicks, or fewer if it answered Finish)
        steps = [s for s, j in zip(ds["step"], ds["sample_index"]) if j == i]
        assert steps == list(range(len(steps))) and 1 <= len(steps) <= 3
    assert all(0.0 <= v <= 1.0 for v in ds["iou"])
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True
    assert oracle_label(gt, gt, 1.0, 4, 0.98) == ("finish", True, 0)
    assert oracle_label(np.zeros_like(gt), gt, 0.0, 4, 0.98) == ("no_object", True, 0)
    action, positive, _ = oracle_label(gt, np.ones_like(gt), 0.25, 4, 0.98)
    assert action == "click" and positive is False  # the mask spills everywhere: remove background
    with pytest.raises(ValueError, match="needs --policy"):
        TinyDataConfig(kind="dagger")


def test_star_plus_keeps_the_policys_improving_clicks_and_replaces_the_rest_with_the_oracle():
    """StaR+ (REFERENCE.md 3): the same policy states as DAgger; a click with reward > 0 keeps its own
    sign and cell, every other step takes the oracle's label."""
    from agents.training.tiny_data import TinyDataConfig, build_examples, improving_click_label, pixel_cell
    from segenv.rollout import StepRecord

    def rec(action, reward, invalid=False):
        return StepRecord(action=action, iou=0.5, reward=reward, invalid=invalid)

    assert improving_click_label(rec([1, 0.3, 0.7, 0, 0], 0.1), (64, 64), 4) == (True, pixel_cell(44, 19, 64, 64, 4))
    assert improving_click_label(rec([0, 0.9, 0.1, 0, 0], 0.02), (64, 64), 4) == (False, 3)  # row 0, col 3
    assert improving_click_label(rec([1, 0.3, 0.7, 0, 0], -0.1), (64, 64), 4) is None  # lowered the IoU
    assert improving_click_label(rec([1, 0.3, 0.7, 0, 0], 0.0), (64, 64), 4) is None  # changed nothing
    assert improving_click_label(rec([3, 0, 0, 0, 0], 0.0), (64, 64), 4) is None  # Finish
    assert improving_click_label(rec(None, 0.0, invalid=True), (64, 64), 4) is None

    common = dict(policy=str(CHECKPOINT), stop=4, max_clicks=3, initial_states=["points"], progress=False)
    dagger = build_examples(TinyDataConfig(kind="dagger", **common))
    star = build_examples(TinyDataConfig(kind="star_plus", **common))
    assert set(star["kind"]) == {"star_plus"}
    assert star["iou"] == dagger["iou"] and star["sample_index"] == dagger["sample_index"]  # the same states
    labels = lambda ds: list(zip(ds["action"], ds["positive"], ds["cell"]))  # noqa: E731
    for own, oracle in zip(labels(star), labels(dagger)):
        assert own == oracle or own[0] == "click"  # only a policy click may differ from the oracle's answer
    assert labels(star) != labels(dagger)  # on these seeded episodes the policy made an improving click of its own
