"""The ``segagent`` command line: ``traces``, ``train sft`` and ``bench``.

::

    segagent traces --episodes 2000 --out runs/traces            # D_traj from the oracle
    torchrun --nproc_per_node 2 -m agents.cli traces --out ...    # one shard per rank, merged at the end
    segagent train sft --model ckpt/tiny --data runs/traces --out runs/sft --steps 200
    segagent bench --agent oracle --env SegAgent-Shapes-v0 ...    # agents.evaluate (= benchmarks/run.py)

Each subcommand is ONE dataclass (:class:`TracesCommand`, :class:`SFTCommand`,
:class:`agents.evaluate.EvalArgs`): its fields are the flags, with their defaults and help in one
place, and the parser is generated from it (:mod:`agents.cliargs`, as transformers'
``HfArgumentParser``). The command then calls the library function
(:func:`agents.training.traces.generate_traces`, :func:`agents.training.sft.train_sft`,
:func:`agents.evaluate.evaluate`); ``to_config()`` maps the flags onto the library's config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Sequence

from agents.cliargs import add_dataclass_arguments, arg, build_or_exit, required
from agents.evaluate import EvalArgs, evaluate


@dataclass(kw_only=True)
class TracesCommand:
    """Generate oracle traces (D_traj) for SFT."""

    out: str = required("output folder")
    env: str = arg("SegAgent-Shapes-v0", "env id")
    split: str = arg("train", "dataset split")
    episodes: Optional[int] = arg(None, "number of samples (default: the whole split)")
    start_index: int = arg(0, "first sample index")
    shard: Optional[int] = arg(None, "this process's shard (default: $RANK or 0)")
    num_shards: Optional[int] = arg(None, "number of shards (default: $WORLD_SIZE or 1)")
    max_clicks: int = arg(20, "clicks per trace at most")
    target_iou: float = arg(0.98, "a trace ends once IoU reaches this")
    seed: int = arg(0, "seeds initial states, resets and tie-breaks")
    chunk_size: int = arg(64, "samples per atomically written chunk")
    image_size: Optional[int] = arg(None, "observation size S (env image_size; default: the env's)")
    initial_mix: tuple[float, ...] = arg((0.6, 0.2, 0.2), "fractions of the initial states empty,box,points")
    env_kwargs: dict = arg({}, "extra gym.make kwargs as a JSON object")
    tie_break: Literal["first", "random"] = arg("first", "the oracle's tie-break (first = RITM, random = FocSAM)")
    store_images: bool = arg(True, "do not store images: regenerate them from the dataset on load")
    merge: bool = arg(True, "do not merge shards when all are done")
    merge_only: bool = arg(False, "only merge finished shards of --out")
    progress: bool = arg(True, "no progress bar")

    def to_config(self):
        """The :class:`agents.training.traces.TraceConfig` these flags describe."""
        from agents.training.traces import TraceConfig

        env_kwargs = dict(self.env_kwargs)
        if self.image_size is not None:
            env_kwargs["image_size"] = self.image_size
        return TraceConfig(
            out=self.out,
            env_id=self.env,
            split=self.split,
            env_kwargs=env_kwargs,
            episodes=self.episodes,
            start_index=self.start_index,
            max_clicks=self.max_clicks,
            target_iou=self.target_iou,
            initial_mix=self.initial_mix,
            seed=self.seed,
            shard=self.shard,
            num_shards=self.num_shards,
            chunk_size=self.chunk_size,
            store_images=self.store_images,
            tie_break=self.tie_break,
            merge=self.merge,
            progress=self.progress,
        )


@dataclass(kw_only=True)
class SFTCommand:
    """Supervised fine-tuning on traces (trl SFTTrainer)."""

    model: str = required("local checkpoint folder to start from")
    data: str = required("trace folder (from `segagent traces`)")
    out: str = required("output folder for the fine-tuned model")
    steps: int = arg(-1, "optimiser steps; <= 0: train for --epochs")
    epochs: float = arg(2.0, "epochs when --steps <= 0")
    lr: float = arg(1e-5, "learning rate")
    scheduler: str = arg("cosine", "learning-rate schedule (transformers' lr_scheduler_type)")
    warmup_steps: float = arg(0, "learning-rate warm-up steps")
    batch_size: int = arg(8, "samples per device per step")
    grad_accum: int = arg(1, "gradient accumulation steps")
    coord_format: Optional[Literal["decimal", "int1000", "loc"]] = arg(
        None, "target coordinates (default: the checkpoint's segagent_coord_format or decimal)"
    )
    coord_order: Optional[Literal["xy", "yx"]] = arg(None, "axis order (default: the checkpoint's or xy)")
    loc_grid: Optional[int] = arg(None, "loc format: grid cells per side (default: the checkpoint's)")
    iou_line: Optional[bool] = arg(
        None, "targets start with 'Current IOU: N', SegAgent's format (default: on, unless the checkpoint declares segagent_iou_line)"
    )
    prompt_style: Optional[Literal["llava", "qwen", "short"]] = arg(None, "prompt (default: the checkpoint's or llava)")
    overlay_color: str = arg("green", "overlay colour of the training images")
    max_samples: Optional[int] = arg(None, "use only the first N steps of the data (default: all)")
    freeze_vision: bool = arg(False, "freeze the vision tower")
    loss_from: Literal["auto", "trl", "model"] = arg("auto", "which loss to train on (see SFTRunConfig)")
    logging_steps: int = arg(1, "log every N steps")
    save_steps: int = arg(0, "checkpoint every N steps (0: only at the end)")
    seed: int = arg(0, "trainer seed")
    sft_kwargs: dict = arg({}, "extra trl.SFTConfig fields as a JSON object")

    def to_config(self):
        """The :class:`agents.training.sft.SFTRunConfig` these flags describe."""
        from agents.mllm.prompt import ActionFormat
        from agents.training.sft import SFTRunConfig

        fmt = None
        overrides = {
            k: v
            for k, v in (("coord_format", self.coord_format), ("coord_order", self.coord_order), ("loc_grid", self.loc_grid))
            if v is not None
        }
        if overrides:
            fmt = _format_with_model_defaults(self.model, overrides, ActionFormat)
        return SFTRunConfig(
            model_path=self.model,
            data=self.data,
            output_dir=self.out,
            max_steps=self.steps,
            num_train_epochs=self.epochs,
            learning_rate=self.lr,
            lr_scheduler_type=self.scheduler,
            warmup_steps=self.warmup_steps,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.grad_accum,
            action_format=fmt,
            iou_line=self.iou_line,
            prompt_style=self.prompt_style,
            overlay_color=self.overlay_color,
            max_samples=self.max_samples,
            freeze_vision=self.freeze_vision,
            loss_from=self.loss_from,
            logging_steps=self.logging_steps,
            save_strategy="steps" if self.save_steps > 0 else "no",
            save_steps=max(1, self.save_steps),
            seed=self.seed,
            sft_kwargs=self.sft_kwargs,
        )


def _cmd_traces(cmd: TracesCommand) -> int:
    from agents.training.traces import generate_traces, merge

    if cmd.merge_only:
        print(merge(cmd.out))
        return 0
    print(generate_traces(cmd.to_config()))
    return 0


def _cmd_train_sft(cmd: SFTCommand) -> int:
    from agents.training.sft import train_sft

    result = train_sft(cmd.to_config())
    losses = [h["loss"] for h in result["history"]]
    summary = {"output_dir": result["output_dir"], "steps_logged": len(losses)}
    if losses:
        summary.update(first_loss=losses[0], last_loss=losses[-1])
    print(json.dumps(summary))
    return 0


def _cmd_bench(args: EvalArgs) -> int:
    evaluate(args)
    return 0


def _add_command(sub, name: str, cls: type, run: Callable[[Any], int], help: str) -> None:
    """A subcommand whose flags are generated from the dataclass ``cls`` and which calls ``run``."""
    p = sub.add_parser(name, help=help, description=cls.__doc__)
    add_dataclass_arguments(p, cls)
    p.set_defaults(_command=cls, _run=run, _parser=p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segagent", description="SegAgent: referring segmentation by clicks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_command(sub, "traces", TracesCommand, _cmd_traces, "generate oracle traces (D_traj) for SFT")
    train = sub.add_parser("train", help="training")
    tsub = train.add_subparsers(dest="trainer", required=True)
    _add_command(tsub, "sft", SFTCommand, _cmd_train_sft, "supervised fine-tuning on traces (trl SFTTrainer)")
    _add_command(sub, "bench", EvalArgs, _cmd_bench, "evaluate an agent (the flags of benchmarks/run.py)")
    return parser


def _format_with_model_defaults(model_path: str, overrides: dict, action_format_cls):
    """The checkpoint's declared format (config.json ``segagent_*``) with the CLI flags on top."""
    from pathlib import Path
    from types import SimpleNamespace

    cfg_path = Path(model_path) / "config.json"
    declared = SimpleNamespace(**json.loads(cfg_path.read_text())) if cfg_path.is_file() else SimpleNamespace()
    return action_format_cls.from_model_config(declared, **overrides)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = build_or_exit(args._parser, args._command, args)
    return args._run(command)


if __name__ == "__main__":
    sys.exit(main())
