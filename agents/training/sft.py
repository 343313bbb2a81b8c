"""Supervised fine-tuning on D_traj with trl's ``SFTTrainer`` (paper sec. 4.2, C.1).

The data are the oracle traces of :mod:`agents.training.traces`, seen through
:func:`agents.training.trace_sft.to_sft_dataset` (overlays built lazily; conversational
``prompt``/``completion`` + ``images``; completion-only loss). The model is any LOCAL
image-text-to-text checkpoint (a tiny one from :mod:`agents.mllm.stock_tiny` /
:mod:`agents.mllm.tiny`, or a real LLaVA / SmolVLM / Qwen-VL folder); the same entry point runs
single-process, under ``torchrun`` or ``accelerate launch`` (trl/transformers handle the ranks).

Settings follow docs/conventions.md#toolchain-notes: ``bf16`` only with CUDA, no gradient checkpointing by default,
``max_length=None`` (truncating into image tokens fails), ``use_cpu`` without a GPU,
``remove_unused_columns=False`` (the transform needs its columns). Paper defaults: AdamW,
lr 1e-5, cosine schedule, 2 epochs.

The run writes ``loss_history.json`` (every logged loss, for a learning curve), the model (with the
action format and prompt style recorded in its config as ``segagent_*`` attributes, so
:class:`agents.mllm.policy.MLLMPolicy` reads them back) and the processor to ``output_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

VISION_PARAM_KEYS = ("vision_tower", "vision_model", "visual.", "vision.")


@dataclass
class SFTRunConfig:
    """Arguments of :func:`train_sft`.

    Attributes:
        model_path: local checkpoint folder to start from.
        data: a trace folder (``generate_traces``'s ``out`` or its ``merged``).
        output_dir: where the model, processor and ``loss_history.json`` go.
        max_steps: optimiser steps (> 0 overrides ``num_train_epochs``).
        num_train_epochs: epochs when ``max_steps <= 0``.
        learning_rate, lr_scheduler_type, warmup_steps, weight_decay: the optimiser schedule.
        per_device_train_batch_size, gradient_accumulation_steps: batch size per step.
        action_format: target coordinate format; None = the checkpoint's ``segagent_*`` config or
            the default (decimals, x before y). Its ``iou_line`` is decided by ``iou_line``.
        iou_line: targets start with ``Current IOU: NN`` (SegAgent's answer format). None (the
            default): on, unless the starting checkpoint declares ``segagent_iou_line`` (then its
            value: a fine-tuned checkpoint keeps its format; the tiny pointer VLM declares False);
            True / False: forced (``--iou-line`` / ``--no-iou-line``).
        prompt_style: ``"llava"``, ``"qwen"`` or ``"short"``; None = the checkpoint's or ``"llava"``.
        overlay_color: the overlay colour of the training images (and its word in the prompt).
        max_samples: use only the first N steps of the data (None = all).
        freeze_vision: freeze the vision tower (the paper's Qwen run froze the ViT).
        bf16: None = only where CUDA is available.
        gradient_checkpointing: None = off.
        logging_steps, save_strategy, save_steps: trainer logging and checkpointing.
        seed: trainer seed.
        dataloader_num_workers: workers building overlays.
        loss_from: ``"trl"``: trl's fused LM head (it runs the backbone and ``lm_head`` itself, so
            it bypasses any logits a custom ``forward`` computes); ``"model"``: the loss the
            model's own ``forward(labels=...)`` returns (needed by the tiny pointer model, whose
            location logits come from a pointer head); ``"auto"``: ``"model"`` for model classes
            outside ``transformers``, else ``"trl"``.
        sft_kwargs: any further ``trl.SFTConfig`` fields (they win).
    """

    model_path: str
    data: str
    output_dir: str
    max_steps: int = -1
    num_train_epochs: float = 2.0
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0
    weight_decay: float = 0.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    action_format: Any = None
    iou_line: Optional[bool] = None
    prompt_style: Optional[str] = None
    overlay_color: str = "green"
    max_samples: Optional[int] = None
    freeze_vision: bool = False
    bf16: Optional[bool] = None
    gradient_checkpointing: Optional[bool] = None
    logging_steps: int = 1
    save_strategy: str = "no"
    save_steps: int = 500
    seed: int = 0
    dataloader_num_workers: int = 0
    loss_from: str = "auto"
    sft_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss_from not in ("auto", "trl", "model"):
            raise ValueError(f"loss_from must be 'auto', 'trl' or 'model', got {self.loss_from!r}")


def _loss_callback_class():
    from transformers import TrainerCallback

    class LossHistoryCallback(TrainerCallback):
        """Appends every logged loss to a JSON file (rewritten atomically after each log)."""

        def __init__(self, path: "str | Path") -> None:
            self.path = Path(path)
            self.history: list[dict] = []
            self.summary: dict = {}

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            if "loss" in logs:
                entry = {"step": int(state.global_step), "loss": float(logs["loss"])}
                for key in ("learning_rate", "grad_norm", "epoch"):
                    if key in logs:
                        entry[key] = float(logs[key])
                self.history.append(entry)
            else:
                self.summary.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            self._write()

        def _write(self) -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"loss": self.history, "summary": self.summary}, indent=1))
            os.replace(tmp, self.path)

    return LossHistoryCallback


def _trainer_class(model: Any, loss_from: str):
    """trl's ``SFTTrainer``, or a subclass whose loss is the model's own (see ``loss_from``)."""
    from transformers import Trainer
    from trl import SFTTrainer

    if loss_from == "auto":
        loss_from = "trl" if type(model).__module__.startswith("transformers.") else "model"
    if loss_from == "trl":
        return SFTTrainer

    class ModelLossSFTTrainer(SFTTrainer):
        """SFTTrainer with ``Trainer.compute_loss``: ``model(**inputs, labels=...)``'s own loss."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return ModelLossSFTTrainer


def build_sft_config(config: SFTRunConfig):
    """The ``trl.SFTConfig`` for a run (device-dependent defaults per docs/conventions.md#toolchain-notes)."""
    import torch
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    kwargs = dict(
        output_dir=str(config.output_dir),
        max_steps=int(config.max_steps),
        num_train_epochs=float(config.num_train_epochs),
        learning_rate=float(config.learning_rate),
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=float(config.weight_decay),
        per_device_train_batch_size=int(config.per_device_train_batch_size),
        gradient_accumulation_steps=int(config.gradient_accumulation_steps),
        bf16=bool(cuda if config.bf16 is None else config.bf16),
        max_length=None,
        use_cpu=not cuda,
        remove_unused_columns=False,
        completion_only_loss=True,
        logging_steps=int(config.logging_steps),
        save_strategy=config.save_strategy,
        save_steps=int(config.save_steps),
        seed=int(config.seed),
        dataloader_num_workers=int(config.dataloader_num_workers),
        report_to="none",
    )
    # transformers 5.x renamed gradient_checkpointing (trl turns it on by default: off on CPU)
    names = {f.name for f in dataclasses.fields(SFTConfig)}
    ckpt = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    kwargs[ckpt] = bool(config.gradient_checkpointing or False)
    kwargs.update(config.sft_kwargs)
    return SFTConfig(**kwargs)


def resolve_action_format(config: SFTRunConfig, model_config: Any):
    """The targets' format: ``config.action_format`` or the checkpoint's declared one, with the
    ``Current IOU`` line as ``config.iou_line`` says (see :class:`SFTRunConfig`)."""
    from agents.mllm.prompt import ActionFormat

    declared = getattr(model_config, "segagent_iou_line", None)
    iou_line = config.iou_line if config.iou_line is not None else (True if declared is None else bool(declared))
    return dataclasses.replace(config.action_format or ActionFormat.from_model_config(model_config), iou_line=iou_line)


def train_sft(config: SFTRunConfig) -> dict:
    """Fine-tune ``config.model_path`` on the traces ``config.data``; save to ``config.output_dir``.

    Returns ``{"output_dir", "history" (logged losses), "summary" (trainer's final metrics)}``.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from agents.mllm.policy import check_local_checkpoint, register_custom_models

    from .trace_sft import load_traces, to_sft_dataset

    path = check_local_checkpoint(config.model_path)
    register_custom_models()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    fmt = resolve_action_format(config, model.config)
    style = config.prompt_style or getattr(model.config, "segagent_prompt_style", None) or "llava"
    fmt.to_model_config(model.config)
    model.config.segagent_prompt_style = style

    if config.freeze_vision:
        frozen = 0
        for name, param in model.named_parameters():
            if any(key in name for key in VISION_PARAM_KEYS):
                param.requires_grad_(False)
                frozen += param.numel()
        log.info("froze %d vision parameters", frozen)

    train_ds = to_sft_dataset(load_traces(config.data), fmt, style, overlay_color=config.overlay_color)
    if config.max_samples is not None:
        train_ds = train_ds.select(range(min(int(config.max_samples), len(train_ds))))
    if len(train_ds) == 0:
        raise ValueError(f"{config.data} holds no training steps")

    out = Path(config.output_dir)
    callback = _loss_callback_class()(out / "loss_history.json")
    trainer = _trainer_class(model, config.loss_from)(
        model=model,
        args=build_sft_config(config),
        train_dataset=train_ds,
        processing_class=processor,
        callbacks=[callback],
    )
    trainer.train()
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out))
        (out / "segagent_sft.json").write_text(
            json.dumps({**{k: v for k, v in asdict(config).items() if k != "action_format"},
                        "action_format": asdict(fmt), "prompt_style": style, "steps": len(train_ds)}, indent=1, default=str)
        )
    return {"output_dir": str(out), "history": callback.history, "summary": callback.summary}


__all__ = ["SFTRunConfig", "build_sft_config", "resolve_action_format", "train_sft"]
