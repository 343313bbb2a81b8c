"""D_traj: SFT data from the click oracle (paper sec. 4.2, B.1; docs/conventions.md#traces).

For each sample index the oracle (:class:`agents.oracle.OracleAgent`, RITM's clicker) acts in the
env through :func:`segenv.rollout.run_episode`. A click is kept only if it STRICTLY improves the
IoU on the best so far; the first non-improving click ends the trace (and is not saved); the
trace also ends once IoU >= ``target_iou`` (default 0.98, SegAgent's fork) or after
``max_clicks`` clicks. Each kept click is one SFT example: the mask BEFORE the click (the
observation mask), the caption, the oracle's action ``(x, y, positive)`` and the IoU of that mask
(the ``Current IOU`` line's target).

Initial states (paper B.1), chosen per sample index, deterministically:
``u = default_rng([seed, index]).random()``; ``u < 0.6`` -> ``"empty"``, ``u < 0.8`` -> ``"box"``
(the segmenter's mask for the GT box), else ``"points"`` (the segmenter's mask for random points
inside the GT box, labelled by GT: the env's ``initial_points``). Change the fractions with
``TraceConfig.initial_mix``. The env's reset seed is derived from ``(seed, index)`` too, so a
sample's trace is the same in every process and shard.

The traces are ONE Hugging Face dataset, one row per trace, images and masks as
``datasets.Image`` (layout and features: :mod:`agents.training.trace_store`):
``datasets.load_from_disk(out)`` opens it, ``push_to_hub`` publishes it. Shard ``i`` of ``n``
takes the sample indices ``indices[i::n]`` (``--shard/--num-shards``, else ``RANK`` /
``WORLD_SIZE`` as set by torchrun / accelerate) and writes them in chunks of ``chunk_size``
samples, each renamed into place when complete, so a run killed at any moment (even ``kill -9``)
resumes without losing a finished chunk. When every shard is done the last one to finish merges
(``concatenate_datasets``, sorted by sample index): the result equals a one-process run.

:func:`agents.training.trace_sft.to_sft_dataset` turns the traces into trl's SFT rows (one per
kept click: overlay image, prompt, ``Current IOU`` line + action; built lazily).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .trace_store import (
    all_shards_done,
    atomic_write_json,
    check_metadata,
    is_merged,
    merge,
    quiet_datasets,
    shard_dir,
    write_chunk,
)

log = logging.getLogger(__name__)

INITIAL_STATES = ("empty", "box", "points")
# fields that decide what is generated: a resumed run must match them
_IDENTITY_FIELDS = (
    "env_id", "split", "env_kwargs", "episodes", "start_index", "max_clicks", "target_iou",
    "initial_mix", "seed", "num_shards", "chunk_size", "store_images", "tie_break",
)


@dataclass
class TraceConfig:
    """What :func:`generate_traces` makes.

    Attributes:
        out: output folder (see the module docstring for the layout).
        env_id: a registered segenv id (``import segenv`` registers them).
        split: dataset split.
        env_kwargs: extra ``gym.make`` kwargs (``image_size``, ``dataset_kwargs``, ``segmenter``...).
        episodes: number of samples (indices ``start_index ..``); None = the whole split.
        start_index: first sample index.
        max_clicks: clicks per trace at most (the env's ``max_clicks``; paper: 20).
        target_iou: a trace ends once IoU >= this (SegAgent's fork: 0.98).
        initial_mix: fractions of the initial states ``(empty, box, points)``.
        seed: seeds the initial-state choice, the env resets and the oracle's tie-breaks.
        shard, num_shards: this process's part; None = ``RANK`` / ``WORLD_SIZE`` (or 0 / 1).
        chunk_size: samples per atomically written chunk.
        store_images: store each trace's observation-size image (PNG); else the SFT view
            regenerates it from the env's dataset.
        tie_break: the oracle's tie-break (``"first"`` = RITM, ``"random"`` = FocSAM).
        merge: merge the shards when all are done (the last shard to finish does).
        progress: show a progress bar.
    """

    out: str
    env_id: str = "SegAgent-Shapes-v0"
    split: str = "train"
    env_kwargs: dict = field(default_factory=dict)
    episodes: Optional[int] = None
    start_index: int = 0
    max_clicks: int = 20
    target_iou: float = 0.98
    initial_mix: tuple = (0.6, 0.2, 0.2)
    seed: int = 0
    shard: Optional[int] = None
    num_shards: Optional[int] = None
    chunk_size: int = 64
    store_images: bool = True
    tie_break: str = "first"
    merge: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.initial_mix = tuple(float(f) for f in self.initial_mix)
        if len(self.initial_mix) != 3 or min(self.initial_mix) < 0 or sum(self.initial_mix) <= 0:
            raise ValueError(f"initial_mix must be 3 non-negative fractions (empty, box, points), got {self.initial_mix}")
        if not 0.0 < self.target_iou <= 1.0:
            raise ValueError(f"target_iou must be in (0, 1], got {self.target_iou}")
        if self.max_clicks < 1:
            raise ValueError(f"max_clicks must be >= 1, got {self.max_clicks}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.episodes is not None and self.episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {self.episodes}")
        if self.shard is None and self.num_shards is None:
            self.shard = int(os.environ.get("RANK", 0))
            self.num_shards = int(os.environ.get("WORLD_SIZE", 1))
        elif self.shard is None or self.num_shards is None:
            raise ValueError("give both shard and num_shards, or neither (then RANK / WORLD_SIZE are used)")
        if not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard must be in [0, num_shards), got shard={self.shard} num_shards={self.num_shards}")

    def identity(self) -> dict:
        d = asdict(self)
        d = {k: d[k] for k in _IDENTITY_FIELDS}
        d["initial_mix"] = list(d["initial_mix"])
        return json.loads(json.dumps(d))


# ---------------------------------------------------------------------------------- recipe
def initial_state_for(index: int, seed: int = 0, mix: Sequence[float] = (0.6, 0.2, 0.2)) -> str:
    """The documented recipe: ``default_rng([seed, index]).random()`` against the cumulative mix."""
    u = np.random.default_rng([int(seed), int(index)]).random()
    cum = np.cumsum(np.asarray(mix, np.float64) / float(sum(mix)))
    for state, edge in zip(INITIAL_STATES, cum):
        if u < edge:
            return state
    return INITIAL_STATES[-1]


def reset_seed_for(index: int, seed: int = 0) -> int:
    """The env reset seed of a sample (independent of shard and order)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1)[0])


def _make_env(config: TraceConfig, initial_state: str):
    import gymnasium as gym

    import segenv  # noqa: F401  (registers the env ids)

    kwargs = dict(config.env_kwargs)
    kwargs.update(split=config.split, max_clicks=config.max_clicks, initial_state=initial_state)
    return gym.make(config.env_id, **kwargs)


class _TraceRecorder:
    """Wraps the oracle: keeps strictly improving clicks, and records how the trace ends.

    A trace ends (REFERENCE conventions, docs/conventions.md) at the first non-improving click
    (not saved, no end step), or with an END step the policy can learn from: ``finish`` when the
    mask reached ``target_iou`` or the oracle has nothing left to fix, ``no_object`` when the
    target is empty (the oracle's NoObject). End steps store the mask they were decided on.
    """

    def __init__(self, oracle: Any, target_iou: float) -> None:
        self.oracle = oracle
        self.needs_gt = True
        self.target = target_iou
        self.steps: list[dict] = []
        self.done = False
        self.reached = False
        self.best = 0.0
        self.last_action: Any = None
        self.image: Optional[np.ndarray] = None

    def reset(self, obs: dict, info: dict) -> None:
        self.steps, self.done, self.last_action = [], False, None
        self.best = float(info["iou"])
        self.image = np.asarray(obs["image"]).copy()
        # an empty target scores IoU 1 on an empty mask, but the annotator's answer there is
        # "No Object Found", not Finish: the oracle decides (it says NoObject)
        empty_target = "gt_mask" in info and not np.asarray(info["gt_mask"]).any()
        self.reached = self.done = self.best >= self.target and not empty_target
        self.oracle.reset(obs, info)

    def _end_step(self, obs: dict, kind: str) -> None:
        self.steps.append({"mask": np.asarray(obs["mask"]) > 0, "x": 0.0, "y": 0.0, "positive": kind == "finish",
                           "iou_before": self.best, "iou_after": self.best, "kind": kind})

    def act(self, obs: dict, info: dict) -> Any:
        from segenv.actions import STOP, Finish, NoObject

        if self.done:
            if self.reached:  # the mask is good enough: the annotator says Finish
                self._end_step(obs, "finish")
                self.reached = False
            return STOP
        action = self.oracle.act(obs, info)
        if isinstance(action, (Finish, NoObject)):  # nothing left to fix / an empty target
            self._end_step(obs, "finish" if isinstance(action, Finish) else "no_object")
            self.done = True
        self.last_action = action
        return action

    def on_step(self, obs_before: dict, record: Any, info_after: dict) -> None:
        from segenv.actions import Click

        if self.done:
            return
        click = self.last_action
        if record.invalid or not isinstance(click, Click):
            self.done = True
            return
        iou = float(record.iou)
        if iou <= self.best:  # the first non-improving click ends the trace, unsaved
            self.done = True
            return
        mask = np.asarray(obs_before["mask"]) > 0
        self.steps.append({"mask": mask, "x": float(click.x), "y": float(click.y), "positive": bool(click.positive),
                           "iou_before": self.best, "iou_after": iou, "kind": "click"})
        self.best = iou
        if iou >= self.target:
            self.done = self.reached = True


def trace_sample(config: TraceConfig, index: int, envs: dict) -> Optional[dict]:
    """The trace row of sample ``index`` (:func:`agents.training.trace_store.trace_features`), or
    None when it holds no step (its first click was not kept and it did not end with Finish /
    NoObject)."""
    from PIL import Image

    from agents.oracle import OracleAgent
    from segenv.rollout import run_episode

    state = initial_state_for(index, config.seed, config.initial_mix)
    if state not in envs:
        envs[state] = _make_env(config, state)
    recorder = _TraceRecorder(OracleAgent(tie_break=config.tie_break, seed=config.seed), config.target_iou)
    traj = run_episode(recorder, envs[state], seed=reset_seed_for(index, config.seed), index=int(index),
                       catch_agent_errors=False, on_step=recorder.on_step)
    if not recorder.steps:
        return None
    steps = recorder.steps
    return {
        "sample_index": int(index),
        "sample_id": traj.sample_id,
        "caption": traj.text,
        "initial_state": state,
        "image": Image.fromarray(recorder.image) if config.store_images else None,
        "masks": [Image.fromarray(s["mask"]) for s in steps],  # bool -> mode "1" (1-bit PNG)
        **{key: [s[key] for s in steps] for key in ("x", "y", "positive", "iou_before", "iou_after", "kind")},
    }


def shard_indices(config: TraceConfig, dataset_len: int) -> list[int]:
    """This shard's sample indices: ``indices[shard::num_shards]``."""
    stop = dataset_len if config.episodes is None else min(dataset_len, config.start_index + config.episodes)
    indices = list(range(config.start_index, stop))
    return indices[config.shard :: config.num_shards]


def generate_traces(config: TraceConfig) -> Path:
    """Generate this process's shard (resuming), merge when all shards are done; return ``out``
    once it holds the merged dataset, else this shard's folder."""
    from tqdm.auto import tqdm

    check_metadata(config.out, config.identity())
    if is_merged(config.out):
        log.info("%s already holds the merged traces", config.out)
        return Path(config.out)
    sdir = shard_dir(config.out, config.shard, config.num_shards)
    sdir.mkdir(parents=True, exist_ok=True)
    for leftover in sdir.glob(".tmp-*"):  # an interrupted chunk: redo it
        shutil.rmtree(leftover, ignore_errors=True)
    (sdir / "DONE.json").unlink(missing_ok=True)
    envs: dict = {"empty": _make_env(config, "empty")}
    indices = shard_indices(config, len(envs["empty"].unwrapped.dataset))
    chunks = [indices[k : k + config.chunk_size] for k in range(0, len(indices), config.chunk_size)]
    finals = [sdir / f"chunk-{c:05d}" for c in range(len(chunks))]
    todo = sum(len(chunk) for chunk, final in zip(chunks, finals) if not final.exists())
    desc = f"traces shard {config.shard}/{config.num_shards}"
    with tqdm(total=len(indices), initial=len(indices) - todo, desc=desc, disable=not config.progress) as bar:
        for chunk, final in zip(chunks, finals):
            if final.exists():
                continue
            rows = []
            for index in chunk:
                row = trace_sample(config, index, envs)
                if row is not None:
                    rows.append(row)
                bar.update(1)
            with quiet_datasets():
                write_chunk(final, rows, chunk)
    for env in envs.values():
        env.close()
    atomic_write_json(sdir / "DONE.json", {"chunks": len(chunks), "samples": len(indices)})
    if config.merge and all_shards_done(config.out):
        return merge(config.out)
    return sdir


__all__ = [
    "INITIAL_STATES",
    "TraceConfig",
    "generate_traces",
    "initial_state_for",
    "merge",
    "reset_seed_for",
    "shard_indices",
    "trace_sample",
]
