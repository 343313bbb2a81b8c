"""Train the tiny pointer VLM (:mod:`agents.mllm.tiny`) to click on procedural shapes.

Run (examples first, see :mod:`agents.training.tiny_data`)::

    python -m agents.training.train_tiny --first_data /tmp/tinycache/first_train \\
        --later_data /tmp/tinycache/later_train --out agents/mllm/checkpoints/tiny --minutes 60

* **Training** is trl's ``SFTTrainer`` through its public API: the examples become
  conversational ``prompt`` (the caption, ``"short"`` prompt style) / ``completion``
  (``Positive point: <loc_k>`` in :mod:`agents.mllm.prompt`'s ``"loc"`` grammar) rows with
  ``images``, built lazily by ``with_transform`` (:func:`sft_rows`), which also mirrors an image
  and its cell at random (``flip_aug``); first- and later-click examples are mixed with
  ``datasets.interleave_datasets`` at ``first_frac``. The loss is the model's own
  ``forward(labels=...)`` (:mod:`agents.training.sft`'s model-loss trainer, trl's documented
  extension point: a subclass overriding ``compute_loss``): trl's default fused LM head multiplies
  backbone states by one output matrix and cannot produce the per-image pointer logits. AdamW,
  ``cosine_with_min_lr`` over ``max_steps``; a callback stops after ``minutes`` of training time.
* **Evaluation** runs the model as :class:`agents.mllm.policy.MLLMPolicy` through the rollout
  harness (:func:`segenv.rollout.run_episodes`, :func:`segenv.rollout.summarize`) every
  ``eval_every_min`` minutes of training and at the end (evaluation time is not training time);
  the checkpoint with the best held-out mIoU after ``max_clicks`` clicks is kept in ``out``
  (fp16 weights), with ``training_history.json`` and ``learning_curve.png``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from agents.mllm.prompt import ActionFormat, build_prompt, render_action
from segenv.actions import NO_OBJECT, STOP, Click

from .tiny_data import cell_to_xy
from .tiny_init import check_example_grids, token_row_map, warm_start  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
SWAP_H = {"left": "right", "right": "left"}
SWAP_V = {"top": "bottom", "bottom": "top", "above": "below", "below": "above"}


@dataclass
class TinyTrainConfig:
    """Arguments of :func:`train` (``python -m agents.training.train_tiny --help`` lists them).

    Attributes:
        out: where the best checkpoint, ``training_history.json`` and ``learning_curve.png`` go.
        first_data, later_data: example folders of :mod:`agents.training.tiny_data` (``later_data``
            empty: first clicks only).
        minutes: training-time budget (evaluations excluded); ``max_steps`` sets the schedule.
        max_steps, batch_size, lr, min_lr_frac, warmup_steps, weight_decay: the optimisation.
        first_frac: share of first-click examples in the mix.
        data, mix: instead of ``first_data`` / ``later_data``: any number of example folders and
            the share of each in the mix (``datasets.interleave_datasets`` probabilities; equal
            shares when ``mix`` is empty). A small set with a large share is oversampled.
        flip_aug: mirror images (and their cells and left/right, top/bottom words) at random.
        eval_every_min, eval_episodes, eval_split, eval_env, eval_initial_states, max_clicks,
            obs_size: harness evaluation from each initial state (``eval_episodes=0``: none; the
            last weights are saved instead); the checkpoint with the best mean final mIoU is kept.
        seed, threads, log_every, progress: run settings.
        hidden_size .. iou_label_sigma: the model built from config (``iou_line``: the answers
            start with the ``Current IOU`` line, one token per value; ``iou_label_sigma``: width in
            bins of its soft target).
        init_from: a saved checkpoint folder to start from: every weight whose name and shape
            match is copied into the model built from config (a checkpoint without the IoU and end
            tokens warm-starts the new vocabulary: the shared token rows are copied, the new ones
            keep their initialisation; :func:`warm_start`).
    """

    out: str = "agents/mllm/checkpoints/tiny"
    first_data: str = "/tmp/tinycache/first_train"
    later_data: str = ""
    minutes: float = 60.0
    max_steps: int = 18000
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_frac: float = 0.05
    warmup_steps: int = 20
    weight_decay: float = 0.01
    first_frac: float = 0.6
    data: list[str] = field(default_factory=list)
    mix: list[float] = field(default_factory=list)
    flip_aug: bool = True
    eval_every_min: float = 8.0
    eval_episodes: int = 30
    eval_split: str = "val"
    eval_env: str = "SegAgent-Shapes-v0"
    eval_initial_states: list[str] = field(default_factory=lambda: ["empty", "points"])
    max_clicks: int = 5
    obs_size: int = 224
    seed: int = 0
    threads: int = 2
    log_every: int = 20
    progress: bool = False
    hidden_size: int = 128
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    intermediate_size: int = 384
    pointer_dim: int = 96
    cnn_channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    prefix_lm: bool = True
    film: bool = True
    loc_grid: int = 14
    image_size: int = 112
    iou_line: bool = True
    iou_label_sigma: float = 2.0
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.minutes <= 0:
            raise ValueError("max_steps and batch_size must be >= 1 and minutes > 0")
        if not 0.0 < self.first_frac <= 1.0:
            raise ValueError(f"first_frac must be in (0, 1], got {self.first_frac}")
        if self.mix and (len(self.mix) != len(self.data) or min(self.mix) < 0 or sum(self.mix) <= 0):
            raise ValueError(f"mix needs one non-negative share per data folder ({len(self.data)}), got {self.mix}")

    def sources(self) -> tuple[list[str], list[float]]:
        """The example folders and their shares in the mix."""
        if self.data:
            shares = self.mix or [1.0] * len(self.data)
            return list(self.data), [w / sum(shares) for w in shares]
        if self.later_data and self.first_frac < 1.0:
            return [self.first_data, self.later_data], [self.first_frac, 1.0 - self.first_frac]
        return [self.first_data], [1.0]

    def model_kwargs(self) -> dict:
        keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "pointer_dim",
                "prefix_lm", "film", "loc_grid", "image_size", "iou_line", "iou_label_sigma")
        return {**{k: getattr(self, k) for k in keys}, "cnn_channels": tuple(self.cnn_channels)}


def flip_example(image: npt.NDArray[np.uint8], text: str, cell: int, grid: int, hflip: bool, vflip: bool):
    """``(image, text, cell)`` mirrored left-right and/or top-bottom (spatial words swapped)."""
    r, c = divmod(int(cell), grid)
    words = text.split()
    if hflip:
        image, c, words = image[:, ::-1], grid - 1 - c, [SWAP_H.get(w, w) for w in words]
    if vflip:
        image, r, words = image[::-1], grid - 1 - r, [SWAP_V.get(w, w) for w in words]
    return np.ascontiguousarray(image), " ".join(words), r * grid + c


def sft_rows(examples: Any, grid: int, flip: bool = False, seed: int = 0, iou_line: bool = False) -> Any:
    """``examples`` (:mod:`agents.training.tiny_data` columns) as trl rows: ``images`` ([PIL]),
    ``prompt`` (user turn: image + caption) and ``completion`` (the answer: with ``iou_line`` the
    ``Current IOU`` line of the example's ``iou`` first; ``Finish`` / ``No Object Found`` for end
    steps), built on access."""
    from PIL import Image

    fmt = ActionFormat("loc", loc_grid=grid, iou_line=iou_line)
    rng = np.random.default_rng(seed)
    ends = {"finish": STOP, "no_object": NO_OBJECT}

    def transform(batch: dict) -> dict:
        out: dict[str, list] = {"images": [], "prompt": [], "completion": []}
        n = len(batch["text"])
        actions = batch.get("action") or ["click"] * n
        ious = batch.get("iou") or [None] * n
        for image, text, positive, cell, kind, iou in zip(batch["image"], batch["text"], batch["positive"],
                                                          batch["cell"], actions, ious):
            image = np.asarray(image.convert("RGB"))
            if flip:
                image, text, cell = flip_example(image, text, cell, grid, rng.random() < 0.5, rng.random() < 0.5)
            _, user = build_prompt(text, "short")
            action = ends[kind] if kind in ends else Click(*cell_to_xy(cell, grid), bool(positive))
            if iou_line and (iou is None or iou < 0):
                raise ValueError("iou_line training needs every example's 'iou' (rebuild the examples with tiny_data)")
            answer = render_action(action, fmt, iou=float(iou) if iou_line else None)
            out["images"].append([Image.fromarray(image)])
            out["prompt"].append([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]}])
            out["completion"].append([{"role": "assistant", "content": [{"type": "text", "text": answer}]}])
        return out

    return examples.with_transform(transform)


def evaluate(model: Any, processor: Any, config: TinyTrainConfig) -> dict:
    """The model as an :class:`~agents.mllm.policy.MLLMPolicy` on ``eval_episodes`` harness episodes
    from each of ``eval_initial_states``.

    Per state: mIoU after clicks 1..``max_clicks`` (``miou_<state>``), the initial mIoU, the share of
    negative clicks; over all: the mean absolute error of the stated ``Current IOU`` (``iou_mae``,
    IoU in percent) and ``score``, the mean final mIoU over the states (the best score is kept).
    The ``empty`` state also fills the legacy keys ``miou`` / ``final_miou`` / ``first_hit``.
    """
    import gymnasium as gym

    import segenv  # noqa: F401  (registers the env ids)
    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from agents.prm import stated_ious
    from segenv.rollout import run_episodes, summarize

    t0 = time.time()
    policy = MLLMPolicy(MLLMPolicyConfig(model_path=config.out, max_new_tokens=6), model=model, processor=processor)
    was_training = model.training
    model.eval()
    result: dict[str, Any] = {"episodes": config.eval_episodes, "split": config.eval_split}
    finals, preds, trues, invalid = [], [], [], []
    try:
        for state in config.eval_initial_states:
            env = gym.make(config.eval_env, split=config.eval_split, max_clicks=config.max_clicks,
                           image_size=config.obs_size, initial_state=state)
            try:
                trajs = run_episodes(policy, env, config.eval_episodes, progress=False)
            finally:
                env.close()
            summary = summarize(trajs, config.max_clicks)
            miou = [round(float(v), 4) for v in summary["miou_per_click"]]
            clicks = [s.action for t in trajs for s in t.steps if s.action is not None and s.action[0] in (0, 1)]
            result[f"miou_{state}"] = miou
            result[f"initial_miou_{state}"] = round(float(np.mean([t.initial_iou for t in trajs])), 4)
            result[f"negative_share_{state}"] = round(sum(a[0] == 0 for a in clicks) / max(1, len(clicks)), 3)
            finals.append(miou[-1])
            invalid.append(summary["invalid_step_rate"])
            p, q = stated_ious(trajs, policy.action_format)
            preds.append(p)
            trues.append(q)
            if state == "empty":
                result.update(miou=miou, final_miou=miou[-1], first_hit=summary["first_click_hit_rate"])
    finally:
        model.train(was_training)
    p, q = np.concatenate(preds), np.concatenate(trues)
    result["iou_mae"] = round(float(np.mean(np.abs(p - q)) * 100), 2) if len(p) else None
    result["invalid_rate"] = round(float(np.mean(invalid)), 4)
    result["score"] = round(float(np.mean(finals)), 4)
    result.setdefault("final_miou", result["score"])
    result.setdefault("miou", result[f"miou_{config.eval_initial_states[0]}"])
    result.setdefault("first_hit", float("nan"))
    result["eval_s"] = round(time.time() - t0, 1)
    return result


def save_checkpoint(model: Any, processor: Any, out: str) -> None:
    """fp16 safetensors + processor files (``config.json`` says float32: loaded for CPU inference)."""
    import copy

    import torch

    os.makedirs(out, exist_ok=True)
    copy.deepcopy(model).to(torch.float16).save_pretrained(out)
    processor.save_pretrained(out)
    path = os.path.join(out, "config.json")
    with open(path) as f:
        conf = json.load(f)
    conf["dtype"] = "float32"
    with open(path, "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)


def plot_history(history: dict, path: str) -> None:
    """Training loss and held-out evaluation against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_rows, evals = history["train"], history["eval"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], lw=1)
    ax[0].set(xlabel="step", ylabel="training loss (answer tokens)", yscale="log",
              title=f"train loss ({history.get('train_seconds', 0) / 60:.1f} min)")
    steps = [r["step"] for r in evals]
    states = sorted({k[5:] for r in evals for k in r if k.startswith("miou_")})
    for state in states:
        got = [(s, r[f"miou_{state}"][-1]) for s, r in zip(steps, evals) if f"miou_{state}" in r]
        ax[1].plot(*zip(*got), "o-", label=f"final mIoU from '{state}'")
    if not states:
        ax[1].plot(steps, [r["final_miou"] for r in evals], "o-", label="held-out final mIoU")
    ax[1].plot(steps, [r["miou"][0] for r in evals], "^-", label="held-out mIoU@1")
    mae = [(s, r["iou_mae"] / 100) for s, r in zip(steps, evals) if r.get("iou_mae") is not None]
    if mae:
        ax[1].plot(*zip(*mae), "x--", label="stated IoU: MAE / 100")
    ax[1].set(xlabel="step", ylim=(0, 1), title="held-out evaluation (rollout harness)")
    ax[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _callback(config: TinyTrainConfig, processor: Any, history: dict):
    from transformers import TrainerCallback

    class TinyRun(TrainerCallback):
        """Time budget, loss history, periodic harness evaluation and the best checkpoint."""

        def __init__(self) -> None:
            self.t0, self.eval_seconds, self.last_eval, self.best = time.time(), 0.0, 0.0, -1.0

        def train_seconds(self) -> float:
            return time.time() - self.t0 - self.eval_seconds

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                history["train"].append({"step": state.global_step, "time_s": round(self.train_seconds(), 1),
                                         "loss": float(logs["loss"]), "lr": float(logs.get("learning_rate", 0.0))})

        def on_step_end(self, args, state, control, model=None, **kwargs):
            due = self.train_seconds() - self.last_eval >= config.eval_every_min * 60
            if config.eval_episodes and due:
                self.last_eval = self.train_seconds()
                self.evaluate(model, state.global_step)
            if self.train_seconds() >= config.minutes * 60:
                control.should_training_stop = True

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if config.eval_episodes:
                self.evaluate(model, state.global_step)
            else:
                save_checkpoint(model, processor, config.out)
            self.write()

        def evaluate(self, model, step: int) -> None:
            t = time.time()
            result = evaluate(model, processor, config)
            self.eval_seconds += time.time() - t
            result.update(step=step, time_s=round(self.train_seconds(), 1))
            history["eval"].append(result)
            log.info("eval step %d: %s", step, {k: v for k, v in result.items() if k.startswith(("miou_", "neg", "iou_", "score"))})
            if result["score"] > self.best:
                self.best = result["score"]
                save_checkpoint(model, processor, config.out)
                history["best"] = {"step": step, "score": self.best, "final_miou": result["final_miou"]}
            self.write()

        def write(self) -> None:
            history["train_seconds"] = round(self.train_seconds(), 1)
            os.makedirs(config.out, exist_ok=True)
            with open(os.path.join(config.out, "training_history.json"), "w") as f:
                json.dump(history, f, indent=1)
            plot_history(history, os.path.join(config.out, "learning_curve.png"))

    return TinyRun()


def train(config: TinyTrainConfig) -> dict:
    """Train as the module docstring says; return the history (``train`` losses, ``eval`` results)."""
    import torch
    from datasets import interleave_datasets, load_from_disk

    from agents.mllm.tiny_build import build_tiny_vlm

    from .sft import SFTRunConfig, _trainer_class, build_sft_config

    torch.set_num_threads(config.threads)
    model, processor = build_tiny_vlm(None, seed=config.seed, **config.model_kwargs())
    warm = warm_start(model, config.init_from, processor.tokenizer) if config.init_from else None
    model.float().train()
    folders, shares = config.sources()
    check_example_grids(folders, model.config.loc_grid)
    parts = [load_from_disk(f) for f in folders]
    keep = [k for k, p in enumerate(parts) if len(p) and shares[k] > 0]
    parts, shares = [parts[k] for k in keep], [shares[k] / sum(shares[k] for k in keep) for k in keep]
    if len(parts) > 1:
        mixed = interleave_datasets(parts, probabilities=shares, seed=config.seed, stopping_strategy="all_exhausted")
    else:
        mixed = parts[0]
    history: dict = {"config": asdict(config), "train": [], "eval": [], "data": {"examples": [len(p) for p in parts]},
                     "warm_start": warm}
    args = build_sft_config(SFTRunConfig(
        model_path=config.init_from, data=folders[0], output_dir=config.out, max_steps=config.max_steps,
        learning_rate=config.lr, lr_scheduler_type="cosine_with_min_lr", warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay, per_device_train_batch_size=config.batch_size,
        logging_steps=config.log_every, seed=config.seed,
        sft_kwargs={"lr_scheduler_kwargs": {"min_lr_rate": config.min_lr_frac}, "adam_beta2": 0.98,
                    "disable_tqdm": not config.progress},
    ))
    trainer = _trainer_class(model, "model")(
        model=model, args=args, train_dataset=sft_rows(mixed, model.config.loc_grid, config.flip_aug, config.seed, config.iou_line),
        processing_class=processor, callbacks=[_callback(config, processor, history)],
    )
    trainer.train()
    return history


def main(argv: Optional[list[str]] = None) -> None:
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(TinyTrainConfig).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO)
    train(config)


__all__ = ["TinyTrainConfig", "evaluate", "flip_example", "save_checkpoint", "check_example_grids", "sft_rows", "token_row_map", "train",
           "warm_start"]

if __name__ == "__main__":
    main()
