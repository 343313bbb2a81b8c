"""The ``segagent`` command line: ``traces``, ``train sft`` and ``bench``.

::

    segagent traces --episodes 2000 --out runs/traces            # D_traj from the oracle
    torchrun --nproc_per_node 2 -m agents.cli traces --out ...    # one shard per rank, merged at the end
    segagent train sft --model ckpt/tiny --data runs/traces --out runs/sft --steps 200
    segagent bench --agent oracle --env SegAgent-Shapes-v0 ...    # agents.evaluate (= benchmarks/run.py)

Each subcommand only parses flags into a config dataclass and calls the library function
(:func:`agents.training.traces.generate_traces`, :func:`agents.training.sft.train_sft`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segagent", description="SegAgent: referring segmentation by clicks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("traces", help="generate oracle traces (D_traj) for SFT")
    tr.add_argument("--env", default="SegAgent-Shapes-v0", help="env id (default %(default)s)")
    tr.add_argument("--split", default="train")
    tr.add_argument("--episodes", type=int, default=None, help="number of samples (default: the whole split)")
    tr.add_argument("--start-index", type=int, default=0)
    tr.add_argument("--out", required=True, help="output folder")
    tr.add_argument("--shard", type=int, default=None, help="this process's shard (default: $RANK or 0)")
    tr.add_argument("--num-shards", type=int, default=None, help="number of shards (default: $WORLD_SIZE or 1)")
    tr.add_argument("--max-clicks", type=int, default=20)
    tr.add_argument("--target-iou", type=float, default=0.98)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--chunk-size", type=int, default=64)
    tr.add_argument("--image-size", type=int, default=None, help="observation size S (env image_size)")
    tr.add_argument("--initial-mix", type=_floats, default=(0.6, 0.2, 0.2), help="fractions empty,box,points")
    tr.add_argument("--env-kwargs", type=_json_dict, default={}, help='extra gym.make kwargs as JSON')
    tr.add_argument("--tie-break", choices=("first", "random"), default="first")
    tr.add_argument("--no-store-images", action="store_true", help="regenerate images from the dataset on load")
    tr.add_argument("--no-merge", action="store_true", help="do not merge shards when all are done")
    tr.add_argument("--merge-only", action="store_true", help="only merge finished shards of --out")
    tr.add_argument("--no-progress", action="store_true")

    train = sub.add_parser("train", help="training")
    tsub = train.add_subparsers(dest="trainer", required=True)
    sft = tsub.add_parser("sft", help="supervised fine-tuning on traces (trl SFTTrainer)")
    sft.add_argument("--model", required=True, help="local checkpoint folder to start from")
    sft.add_argument("--data", required=True, help="trace folder (from `segagent traces`)")
    sft.add_argument("--out", required=True, help="output folder for the fine-tuned model")
    sft.add_argument("--steps", type=int, default=-1, help="optimiser steps (default: --epochs)")
    sft.add_argument("--epochs", type=float, default=2.0)
    sft.add_argument("--lr", type=float, default=1e-5)
    sft.add_argument("--scheduler", default="cosine")
    sft.add_argument("--warmup-steps", type=float, default=0)
    sft.add_argument("--batch-size", type=int, default=8, help="per device")
    sft.add_argument("--grad-accum", type=int, default=1)
    sft.add_argument("--coord-format", choices=("decimal", "int1000", "loc"), default=None,
                     help="default: the checkpoint's segagent_coord_format or decimal")
    sft.add_argument("--coord-order", choices=("xy", "yx"), default=None)
    sft.add_argument("--loc-grid", type=int, default=None)
    sft.add_argument("--iou-line", action="store_true", help="targets start with 'Current IOU: N' (PRM)")
    sft.add_argument("--prompt-style", choices=("llava", "qwen", "short"), default=None)
    sft.add_argument("--overlay-color", default="green")
    sft.add_argument("--max-samples", type=int, default=None)
    sft.add_argument("--freeze-vision", action="store_true")
    sft.add_argument("--loss-from", choices=("auto", "trl", "model"), default="auto")
    sft.add_argument("--logging-steps", type=int, default=1)
    sft.add_argument("--save-steps", type=int, default=0, help="checkpoint every N steps (0: only at the end)")
    sft.add_argument("--seed", type=int, default=0)
    sft.add_argument("--sft-kwargs", type=_json_dict, default={}, help="extra trl.SFTConfig fields as JSON")

    sub.add_parser("bench", help="evaluate an agent (arguments go to agents.evaluate, as benchmarks/run.py)", add_help=False)
    return parser


def _cmd_traces(args: argparse.Namespace) -> int:
    from agents.training.traces import TraceConfig, generate_traces, merge

    if args.merge_only:
        print(merge(args.out))
        return 0
    env_kwargs = dict(args.env_kwargs)
    if args.image_size is not None:
        env_kwargs["image_size"] = args.image_size
    config = TraceConfig(
        out=args.out,
        env_id=args.env,
        split=args.split,
        env_kwargs=env_kwargs,
        episodes=args.episodes,
        start_index=args.start_index,
        max_clicks=args.max_clicks,
        target_iou=args.target_iou,
        initial_mix=args.initial_mix,
        seed=args.seed,
        shard=args.shard,
        num_shards=args.num_shards,
        chunk_size=args.chunk_size,
        store_images=not args.no_store_images,
        tie_break=args.tie_break,
        merge=not args.no_merge,
        progress=not args.no_progress,
    )
    print(generate_traces(config))
    return 0


def _cmd_train_sft(args: argparse.Namespace) -> int:
    from agents.mllm.prompt import ActionFormat
    from agents.training.sft import SFTRunConfig, train_sft

    fmt = None
    if any(v is not None for v in (args.coord_format, args.coord_order, args.loc_grid)) or args.iou_line:
        fmt_kwargs = {
            k: v
            for k, v in (("coord_format", args.coord_format), ("coord_order", args.coord_order), ("loc_grid", args.loc_grid))
            if v is not None
        }
        if args.iou_line:
            fmt_kwargs["iou_line"] = True
        fmt = _format_with_model_defaults(args.model, fmt_kwargs, ActionFormat)
    config = SFTRunConfig(
        model_path=args.model,
        data=args.data,
        output_dir=args.out,
        max_steps=args.steps,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        lr_scheduler_type=args.scheduler,
        warmup_steps=args.warmup_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        action_format=fmt,
        prompt_style=args.prompt_style,
        overlay_color=args.overlay_color,
        max_samples=args.max_samples,
        freeze_vision=args.freeze_vision,
        loss_from=args.loss_from,
        logging_steps=args.logging_steps,
        save_strategy="steps" if args.save_steps > 0 else "no",
        save_steps=max(1, args.save_steps),
        seed=args.seed,
        sft_kwargs=args.sft_kwargs,
    )
    result = train_sft(config)
    losses = [h["loss"] for h in result["history"]]
    summary = {"output_dir": result["output_dir"], "steps_logged": len(losses)}
    if losses:
        summary.update(first_loss=losses[0], last_loss=losses[-1])
    print(json.dumps(summary))
    return 0


def _format_with_model_defaults(model_path: str, overrides: dict, action_format_cls):
    """The checkpoint's declared format (config.json ``segagent_*``) with the CLI flags on top."""
    from pathlib import Path
    from types import SimpleNamespace

    cfg_path = Path(model_path) / "config.json"
    declared = SimpleNamespace(**json.loads(cfg_path.read_text())) if cfg_path.is_file() else SimpleNamespace()
    return action_format_cls.from_model_config(declared, **overrides)


def _cmd_bench(rest: Sequence[str]) -> int:
    from agents.evaluate import main as bench_main

    result = bench_main(list(rest))
    return int(result) if isinstance(result, int) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # everything after `bench` belongs to agents.evaluate
        return _cmd_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "traces":
        return _cmd_traces(args)
    if args.command == "train" and args.trainer == "sft":
        return _cmd_train_sft(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":
    sys.exit(main())
