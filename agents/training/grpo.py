"""GRPO of the MLLM policy with trl's ``GRPOTrainer`` (issue #15; beyond the paper, which stops at StaR+).

Run (single process; the same line runs under ``torchrun`` / ``accelerate launch``, trl handles
the ranks)::

    python -m agents.training.grpo --init agents/mllm/checkpoints/tiny --out /tmp/grpo_tiny \\
        --states 3000 --max_steps 2000 --num_generations 8 --minutes 18

1. **Prompts are env states.** The starting policy (the SFT tiny model, greedy, as the benchmark
   runs it) is rolled out on Shapes train items from the ``empty`` and ``points`` initial states
   (:func:`agents.training.grpo_states.gather_states`); every state it visits becomes one row: the
   conversational prompt of :class:`agents.mllm.policy.MLLMPolicy` (so the model sees exactly what
   it sees when acting), the overlay as ``image``, and the state's recipe (sample index, reset
   seed, initial state, clicks so far, true IoU; :class:`~agents.training.grpo_states.PromptState`).
   The main process gathers them once into ``OUT/states`` (``datasets.save_to_disk``); other ranks
   wait for it and load that folder (tested with ``torchrun --nproc_per_node 2`` on CPU).
2. **Rewards** (weights ``w_gain``, ``w_format``, ``w_iou_line``; trl sums them): ``iou_gain``
   restores the env to the prompt's state, applies the completion's action and returns the IoU
   change (``Finish`` and unparsable answers 0); ``format`` is 1 for a parsable answer with its
   ``Current IOU`` line; ``iou_line`` is ``max(0, 1 - |stated - true| / iou_tolerance)``. The gain
   of one (state, action) is deterministic, so the reward object memoises it: a group of G samples
   often repeats an answer.
3. **The trainer** is ``GRPOTrainer`` with one override, :class:`FullLogitsGRPOTrainer`: trl 1.16
   scores completions through a fused LM head (backbone states times ``lm_head``), which bypasses
   the tiny model's pointer readout (its location logits are computed per image inside
   ``forward``); the override runs the model's own ``forward`` and takes log-softmax of its logits.
4. **Output**: ``OUT`` is a checkpoint folder (weights, config, processor) that
   ``benchmarks/run.py --agent mllm --model OUT`` runs, plus ``grpo_history.json`` (every logged
   metric) and ``grpo_config.json``.

Measured (docs/grpo.md): 18 CPU minutes of GRPO from the shipped tiny model do not change its
final mIoU on Shapes beyond noise (paired bootstrap); it learns to answer ``Finish`` sooner.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .grpo_states import (
    PromptState,
    StateRestorer,
    completion_text,
    format_reward,
    gather_states,
    iou_gain,
    iou_line_reward,
)

log = logging.getLogger(__name__)


@dataclass
class GRPORunConfig:
    """Arguments of :func:`train_grpo` (``python -m agents.training.grpo --help`` lists them).

    Attributes:
        init: the checkpoint to start from (the SFT tiny model by default).
        out: the output checkpoint folder (also holds ``states/``, the gathered prompts).
        states: how many prompt states to gather; ``states_dir``: load them from there instead
            (default ``OUT/states``, reused when it exists).
        env_id, split, start: where the states come from: items ``start, start + 1, ...`` of the
            split (17000+ of Shapes train: items the tiny model's SFT and DAgger data never used).
        initial_states, obs_size, max_clicks: the episodes gathered (the benchmark's S=512, 5 clicks).
        max_steps, minutes: optimiser steps, and a wall-time budget for training (0 = none).
        num_generations: G, samples per prompt; ``batch_size``: completions per device and step
            (a multiple of G: ``batch_size / G`` prompts per step).
        lr, beta, temperature, scale_rewards, loss_type, epsilon: GRPO settings (``beta`` > 0 adds the
            KL to the starting model; ``scale_rewards="batch"``: advantages divided by the batch's
            reward std, not each group's, so a group whose clicks differ by 0.001 IoU does not get
            full-size advantages).
        w_gain, w_format, w_iou_line, iou_tolerance: reward weights and the IoU line's tolerance.
        max_completion_length: generation budget (an answer is at most 4 tokens + EOS).
        seed, threads, logging_steps: run settings (``threads`` 0 = torch's default).
        grpo_kwargs: any further ``trl.GRPOConfig`` fields (they win).
    """

    init: str = "agents/mllm/checkpoints/tiny"
    out: str = "/tmp/grpo_tiny"
    states: int = 3000
    states_dir: str = ""
    env_id: str = "SegAgent-Shapes-v0"
    split: str = "train"
    start: int = 17000
    initial_states: list[str] = field(default_factory=lambda: ["empty", "points"])
    obs_size: int = 512
    max_clicks: int = 5
    max_steps: int = 400
    minutes: float = 0.0
    num_generations: int = 8
    batch_size: int = 32
    lr: float = 1e-4
    beta: float = 0.0
    temperature: float = 1.0
    scale_rewards: str = "batch"
    loss_type: str = "dapo"
    epsilon: float = 0.2
    w_gain: float = 1.0
    w_format: float = 0.1
    w_iou_line: float = 0.1
    iou_tolerance: float = 0.1
    max_completion_length: int = 6
    seed: int = 0
    threads: int = 1
    logging_steps: int = 5
    grpo_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_generations < 2 or self.batch_size % self.num_generations:
            raise ValueError(f"num_generations must be >= 2 and divide batch_size ({self.batch_size}), "
                             f"got {self.num_generations}")
        if self.states < 1 or self.max_steps < 1 or self.minutes < 0:
            raise ValueError("states and max_steps must be >= 1 and minutes >= 0")

    @property
    def states_path(self) -> str:
        return self.states_dir or os.path.join(self.out, "states")


# ----------------------------------------------------------------------------- prompts
def build_state_dataset(config: GRPORunConfig, policy: Any) -> Any:
    """The prompt rows (module docstring, step 1) as a ``datasets.Dataset``."""
    from datasets import Dataset, Features, Image, Sequence, Value

    restorer = StateRestorer(config.env_id, config.split, config.obs_size, config.max_clicks)
    n_items = len(restorer.env(config.initial_states[0]).unwrapped.dataset)
    items = range(config.start, n_items)
    gathered = gather_states(policy, restorer, items, config.initial_states, config.seed, limit=config.states,
                             image_size=model_input_size(policy.processor))
    restorer.close()
    if len(gathered) < config.states:
        log.warning("only %d states from items %d..%d", len(gathered), config.start, n_items - 1)
    rows = []
    for k, (state, overlay, text) in enumerate(gathered):
        rows.append({"prompt": policy.messages(text), "image": overlay, "state_id": k, **state.to_row()})
    features = Features({
        "prompt": [{"role": Value("string"), "content": [{"type": Value("string"), "text": Value("string")}]}],
        "image": Image(), "state_id": Value("int64"), "sample_index": Value("int64"), "seed": Value("int64"),
        "initial_state": Value("string"), "hist_x": Sequence(Value("float64")), "hist_y": Sequence(Value("float64")),
        "hist_pos": Sequence(Value("int32")), "iou": Value("float64"),
    })
    return Dataset.from_list(rows, features=features)


def model_input_size(processor: Any) -> Optional[int]:
    """The square side a processor resizes every image to with PIL bicubic (the tiny model's
    ``CLIPImageProcessorPil`` at 112), or None when it does something else (then the overlays are
    stored at the observation size and the processor does its own resizing)."""
    image_processor = getattr(processor, "image_processor", None)
    size = getattr(image_processor, "size", None) or {}
    if (not getattr(image_processor, "do_resize", False) or getattr(image_processor, "do_center_crop", False)
            or getattr(image_processor, "resample", None) != 3):
        return None
    height, width = size.get("height"), size.get("width")
    return int(height) if height and height == width else None


def load_or_gather_states(config: GRPORunConfig, policy_factory: Any, args: Any) -> Any:
    """``OUT/states`` (or ``states_dir``) if it exists, else gathered by the main process and saved;
    every other rank waits for it and loads it.

    ``args``: the run's ``GRPOConfig``. Its ``main_process_first`` is the barrier: building it set
    up the distributed state, so under ``torchrun`` the ranks are known here (a bare
    ``accelerate.PartialState()`` made before that saw one process per rank, and every rank
    gathered into the same folder).
    """
    from datasets import load_from_disk

    path = config.states_path
    with args.main_process_first(local=False, desc="gathering GRPO prompt states"):
        if not os.path.isdir(path):
            ds = build_state_dataset(config, policy_factory())
            ds.save_to_disk(path)
            log.info("gathered %d prompt states -> %s", len(ds), path)
        ds = load_from_disk(path)
    return ds


# ----------------------------------------------------------------------------- rewards
class GRPORewards:
    """The three reward functions trl calls (``reward(prompts, completions, **columns)``), sharing
    one :class:`StateRestorer` and a memo of IoU gains keyed by (state, answer).

    Each is a plain bound method with a ``__name__`` (trl logs ``rewards/<name>/mean``).
    """

    def __init__(self, fmt: Any, restorer: StateRestorer, iou_tolerance: float = 0.1, memo_size: int = 20000) -> None:
        self.fmt, self.restorer, self.iou_tolerance, self.memo_size = fmt, restorer, iou_tolerance, memo_size
        self._memo: dict[tuple, float] = {}

    def funcs(self) -> list:
        return [self.iou_gain, self.format, self.iou_line]

    def iou_gain(self, prompts: list, completions: list, **columns: Any) -> list[float]:
        """IoU gain of each completion's action in its prompt's state (:func:`grpo_states.iou_gain`)."""
        out = []
        for k, completion in enumerate(completions):
            row = {key: columns[key][k] for key in ("sample_index", "seed", "initial_state", "hist_x", "hist_y",
                                                    "hist_pos", "iou")}
            state = PromptState.from_row(row)
            text = completion_text(completion)
            action_key = _action_key(text, self.fmt)
            key = (state.sample_index, state.seed, state.initial_state, state.history, action_key)
            if key not in self._memo:
                if len(self._memo) >= self.memo_size:
                    self._memo.clear()
                self._memo[key] = iou_gain(self.restorer, state, text, self.fmt)
            out.append(self._memo[key])
        return out

    def format(self, prompts: list, completions: list, **columns: Any) -> list[float]:
        """1 for a parsable answer with its IoU line (:func:`grpo_states.format_reward`)."""
        return format_reward([completion_text(c) for c in completions], self.fmt)

    def iou_line(self, prompts: list, completions: list, iou: list, **columns: Any) -> list[float]:
        """How close the stated ``Current IOU`` is to the state's true IoU (:func:`grpo_states.iou_line_reward`)."""
        return iou_line_reward([completion_text(c) for c in completions], iou, self.fmt, self.iou_tolerance)


def _action_key(text: str, fmt: Any) -> tuple:
    from agents.mllm.prompt import parse_action_text

    return parse_action_text(text, fmt).key()


# ----------------------------------------------------------------------------- trainer
def _trainer_class():
    """``GRPOTrainer`` with full-logit scoring (module docstring, step 3); built lazily (trl import)."""
    import torch
    from trl import GRPOTrainer

    class FullLogitsGRPOTrainer(GRPOTrainer):
        """Scores completions with the model's own ``forward`` logits (its pointer readout included).

        Same signature and return as trl 1.16's ``_get_per_token_logps_and_entropies``: per-token
        log-probs of the last ``logits_to_keep`` tokens (logits divided by the sampling temperature,
        as trl's fused head does), entropies when asked, and no MoE aux loss. One image per sequence.
        """

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               pixel_values=None, num_images=None, **unused):
            batch_size = batch_size or input_ids.size(0)
            starts = torch.tensor([0] + list(num_images)).cumsum(0) if num_images is not None else None
            logps, entropies = [], []
            for s in range(0, input_ids.size(0), batch_size):
                e = min(s + batch_size, input_ids.size(0))
                inputs = {"input_ids": input_ids[s:e], "attention_mask": attention_mask[s:e]}
                if pixel_values is not None:
                    inputs["pixel_values"] = pixel_values[starts[s]:starts[e]] if starts is not None else pixel_values[s:e]
                with self.accelerator.autocast():
                    logits = model(**inputs).logits
                # position t predicts token t + 1: the completion's tokens are the last logits_to_keep
                logits = logits[:, -logits_to_keep - 1:-1].float() / self.temperature
                logp = torch.log_softmax(logits, dim=-1)
                targets = input_ids[s:e, -logits_to_keep:]
                logps.append(logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1))
                if compute_entropy:
                    entropies.append(-(logp.exp() * logp).sum(-1))
            return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    return FullLogitsGRPOTrainer


def build_grpo_config(config: GRPORunConfig) -> Any:
    """The ``trl.GRPOConfig`` (CPU-safe defaults as docs/conventions.md#toolchain-notes: no bf16
    without CUDA, no gradient checkpointing, ``use_cpu`` without a GPU)."""
    import torch
    from trl import GRPOConfig

    cuda = torch.cuda.is_available()
    kwargs = dict(
        output_dir=config.out, max_steps=config.max_steps, learning_rate=config.lr,
        per_device_train_batch_size=config.batch_size, num_generations=config.num_generations,
        max_completion_length=config.max_completion_length, temperature=config.temperature, beta=config.beta,
        scale_rewards=config.scale_rewards, loss_type=config.loss_type, epsilon=config.epsilon,
        reward_weights=[config.w_gain, config.w_format, config.w_iou_line],
        lr_scheduler_type="constant_with_warmup", warmup_steps=5, bf16=cuda, use_cpu=not cuda,
        logging_steps=config.logging_steps, save_strategy="no", seed=config.seed, report_to="none",
        remove_unused_columns=False, disable_tqdm=True,
    )
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    ckpt = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    kwargs[ckpt] = False
    kwargs.update(config.grpo_kwargs)
    return GRPOConfig(**kwargs)


def _history_callback(config: GRPORunConfig, history: dict):
    from transformers import TrainerCallback

    class History(TrainerCallback):
        """Every logged metric to ``OUT/grpo_history.json`` (main process), and the time budget."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                history["log"].append({"step": state.global_step, "time_s": round(time.time() - self.t0, 1), **logs})
                Path(config.out).mkdir(parents=True, exist_ok=True)
                (Path(config.out) / "grpo_history.json").write_text(json.dumps(history, indent=1, default=str))

        def on_step_end(self, args, state, control, **kwargs):
            if config.minutes and time.time() - self.t0 >= config.minutes * 60:
                control.should_training_stop = True

    return History()


def train_grpo(config: GRPORunConfig, model: Any = None, processor: Any = None) -> dict:
    """Gather (or load) the prompt states, run GRPO, save the checkpoint to ``config.out``.

    ``model`` / ``processor``: an already loaded starting model (tests); else ``config.init`` is
    loaded. Returns the history (``log``: every logged metric; ``states``, ``train_seconds``).
    """
    import torch

    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig, load_model_and_processor
    from agents.mllm.prompt import ActionFormat

    if config.threads:
        torch.set_num_threads(config.threads)
    if model is None or processor is None:
        model, processor = load_model_and_processor(config.init, device="cpu", dtype="float32")
    model.float()

    def policy_factory() -> MLLMPolicy:  # the starting model, greedy, acting as in the benchmark
        return MLLMPolicy(MLLMPolicyConfig(model_path=config.init, max_new_tokens=config.max_completion_length),
                          model=model, processor=processor)

    args = build_grpo_config(config)
    states = load_or_gather_states(config, policy_factory, args)
    fmt = ActionFormat.from_model_config(model.config)
    restorer = StateRestorer(config.env_id, config.split, config.obs_size, config.max_clicks)
    rewards = GRPORewards(fmt, restorer, config.iou_tolerance)
    history: dict = {"config": asdict(config), "states": len(states), "log": []}
    model.train()
    trainer = _trainer_class()(
        model=model, reward_funcs=rewards.funcs(), args=args, train_dataset=states,
        processing_class=processor, callbacks=[_history_callback(config, history)],
    )
    t0 = time.time()
    trainer.train()
    history["train_seconds"] = round(time.time() - t0, 1)
    history["steps"] = trainer.state.global_step
    restorer.close()
    trainer.save_model(config.out)
    if trainer.is_world_process_zero():
        processor.save_pretrained(config.out)
        (Path(config.out) / "grpo_config.json").write_text(json.dumps(asdict(config), indent=1))
        (Path(config.out) / "grpo_history.json").write_text(json.dumps(history, indent=1, default=str))
    return history


def main(argv: Optional[list[str]] = None) -> None:
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(GRPORunConfig).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train_grpo(config)


__all__ = ["GRPORewards", "GRPORunConfig", "build_grpo_config", "build_state_dataset", "load_or_gather_states",
           "main", "model_input_size", "train_grpo"]

if __name__ == "__main__":
    main()
