"""agents.training.sft: trl SFTTrainer on oracle traces lowers the loss of a tiny LLaVA."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402

from agents.mllm import ActionFormat, MLLMPolicy, MLLMPolicyConfig, build_tiny_llava  # noqa: E402
from agents.training.sft import SFTRunConfig, build_sft_config, resolve_action_format, train_sft  # noqa: E402
from agents.training.traces import TraceConfig, generate_traces  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    data = generate_traces(
        TraceConfig(
            out=str(root / "traces"),
            episodes=10,
            chunk_size=5,
            max_clicks=5,
            env_kwargs={"image_size": 64, "dataset_kwargs": {"image_size": 96}},
            shard=0,
            num_shards=1,
            progress=False,
        )
    )
    model = build_tiny_llava(root / "tiny_llava")
    config = SFTRunConfig(
        model_path=str(model),
        data=str(data),
        output_dir=str(root / "out"),
        max_steps=20,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=4,
        action_format=ActionFormat("decimal", iou_line=True),
        prompt_style="short",  # short sequences keep the test fast; the Fig. 6 prompt works the same way
        logging_steps=1,
    )
    return config, train_sft(config)


def test_loss_goes_down(run):
    _, result = run
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 20
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first * 0.8, losses


def test_outputs_saved_and_loadable(run):
    config, result = run
    out = config.output_dir
    history = json.loads(open(f"{out}/loss_history.json").read())
    assert [h["loss"] for h in history["loss"]] == [h["loss"] for h in result["history"]]
    assert history["loss"][0]["step"] == 1 and "train_runtime" in history["summary"]
    saved = json.loads(open(f"{out}/config.json").read())
    assert saved["segagent_coord_format"] == "decimal" and saved["segagent_iou_line"] is True
    assert saved["segagent_prompt_style"] == "short"
    policy = MLLMPolicy(MLLMPolicyConfig(out, max_new_tokens=4))
    assert policy.action_format == ActionFormat("decimal", iou_line=True)
    assert policy.prompt_style == "short"


def test_sft_config_follows_toolchain_on_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU settings")
    args = build_sft_config(SFTRunConfig(model_path="m", data="d", output_dir=str(tmp_path)))
    assert args.bf16 is False and args.use_cpu is True and args.max_length is None
    assert args.remove_unused_columns is False and args.gradient_checkpointing is False
    assert args.learning_rate == 1e-5 and args.lr_scheduler_type.value == "cosine"  # the paper's defaults


def test_iou_line_is_on_by_default_with_an_opt_out():
    """SegAgent's answers start with ``Current IOU: NN``: SFT targets do too unless told otherwise or
    the checkpoint declares its own format (a tiny pointer VLM built without IoU tokens says so)."""
    from types import SimpleNamespace

    from agents.mllm.tiny import TinySegConfig

    def resolved(model_config, **kw):
        return resolve_action_format(SFTRunConfig(model_path="m", data="d", output_dir="o", **kw), model_config)

    stock = SimpleNamespace()  # a checkpoint that declares nothing (e.g. a downloaded LLaVA)
    assert resolved(stock) == ActionFormat("decimal", iou_line=True)
    assert resolved(stock, iou_line=False).iou_line is False  # the opt-out
    assert resolved(stock, action_format=ActionFormat("int1000", "yx")) == ActionFormat("int1000", "yx", iou_line=True)
    assert resolved(SimpleNamespace(segagent_iou_line=False)).iou_line is False  # a checkpoint keeps its format
    assert resolved(SimpleNamespace(segagent_iou_line=False), iou_line=True).iou_line is True
    tiny = resolved(TinySegConfig())
    assert tiny.coord_format == "loc" and tiny.iou_line is False



def test_stock_sft_targets_carry_iou_lines_and_negative_points(tmp_path):
    """The generic path (issue #13): D_traj from box / points starts -> trl rows whose targets
    are SegAgent's answers, ``Current IOU: NN`` first, with negative points among them."""
    from agents.training.trace_sft import load_traces, to_sft_dataset

    data = generate_traces(TraceConfig(out=str(tmp_path / "tr"), episodes=16, max_clicks=4, initial_mix=(0.0, 0.5, 0.5),
                                       env_kwargs={"image_size": 64}, progress=False))
    rows = to_sft_dataset(load_traces(data), prompt_style="short")
    answers = [rows[i]["completion"][0]["content"][0]["text"] for i in range(len(rows))]
    assert all(a.startswith("Current IOU: ") for a in answers)
    assert any("Negative point: (" in a for a in answers) and any("Positive point: (" in a for a in answers)
