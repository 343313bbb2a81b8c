"""The tiny pointer VLM's training examples: observations labelled with one grid-cell action.

Seven kinds, each saved as ONE Hugging Face dataset (``datasets.load_from_disk(out)`` opens it):

* ``"traces"`` (the shipped model's recipe, paper B.1): every kept step of a D_traj made by
  ``segagent traces`` (:mod:`agents.training.traces`: RITM-oracle clicks, positive and negative,
  from the three initial states, each strictly improving the IoU, then the ``Finish`` / ``No
  Object Found`` end step): the overlay the oracle saw, its sign (or end action) and the IoU of
  that mask (the ``Current IOU`` target). The oracle clicked a pixel; the tiny model answers a
  cell of its ``G x G`` grid and is decoded to the cell centre, so the label is the cell whose
  centre lies deepest inside the oracle's error region of that sign (the decoded click then
  lands where the oracle's click would act; the oracle pixel's own cell when no centre is inside).
  ``finish_keep`` keeps that share of the end steps (class balance; seeded);

* ``"first"``: empty-mask observations of dataset items (the overlay of an empty mask is the
  image itself, so no segmenter call is needed), labelled with the oracle's first click, or
  ``No Object Found`` (true IoU 1.0: both masks empty) when the item's target is empty; with
  ``no_target_fraction=f`` that share of the items name an absent object (the Shapes datasets'
  gRefCOCO-style items, issue #21) on the SAME images as the real items, so the model must read
  the text to tell them apart;
* ``"later"``: states of oracle episodes run through the rollout harness
  (:func:`segenv.rollout.run_episode`, the env's segmenter answering) from the initial states
  ``initial_states`` (one drawn per item, seeded), one example per step that strictly improves
  the IoU: the observation *before* the step. The first step of an empty start is left out (it is
  a ``"first"`` example). With ``later_labels="target"`` these observations are relabelled
  "positive click on the target's deepest cell" (the shipped tiny model's recipe:
  ``docs/tiny_vlm.md``).

* ``"dagger"`` (DAgger; StaR+'s idea of learning on one's own states): episodes of the POLICY
  ``policy`` (a tiny checkpoint) from the initial states ``initial_states`` through the harness; every
  state it visits is labelled with what the oracle would answer there (:func:`oracle_label`: the
  cell oracle's click, ``Finish`` once the IoU reaches ``finish_iou`` or nothing is left to fix,
  ``No Object Found`` on an empty target) and the true IoU. The policy's own mistakes are where
  pure imitation of oracle traces never goes (TOOLCHAIN.md: distribution shift).

* ``"star_plus"`` (paper Alg. 1, StaR+; REFERENCE.md 3): the same policy episodes as ``"dagger"``,
  but a policy click that raised the IoU (reward > 0) keeps its own label (its sign and the cell
  it clicked, :func:`pixel_cell`); every other step (an IoU-lowering or no-gain click, ``Finish``,
  ``No Object Found``, an invalid answer) is replaced by the oracle's answer from that state, as
  ``"dagger"`` labels it. Merge it with the D_traj sets (``--data ... --mix``) to fine-tune.

* ``"masks"`` (the PRM's data, paper E.1's construction on TRAIN items): per item
  ``masks_per_item`` masks from ``k`` random points inside the ground-truth box, labelled by GT
  membership and run through the env's segmenter (the env's ``initial_state="points"``, ``k`` drawn
  from ``[min_points, max_points]``), each labelled like ``"dagger"`` (:func:`oracle_label`) with its
  true IoU. Oracle traces hold mostly near-perfect masks, so the ``Current IOU`` line rarely sees
  the mid-quality masks (IoU 0.2-0.7) it must rank for annotation filtering and tree search.

* ``"wrong_object"`` (Shapes-family datasets): masks of a distractor object, alone or beside the
  referent, labelled like ``"masks"`` (:mod:`agents.training.tiny_wrong_object`): the clean masks
  of the wrong object that E.1's in-box points never make and a PRM must rate low.

Labels are grid cells (:func:`label_cell`): the oracle (:func:`segenv.clicker.next_click`)
decides the sign; the cell is the one whose *centre* lies deepest inside the error region of that
sign, so the decoded click (the cell centre) lands in the right region; the oracle pixel's cell is
the fallback. The later-click agent clicks those cell centres (:class:`CellOracle`).

Columns: ``image`` (``datasets.Image``, RGB at the model's input size, PIL bicubic like its
processor), ``text``, ``positive``, ``cell`` (``row * G + col``), ``sample_index``, ``step``,
``kind``, ``action`` (``"click"``, ``"finish"`` or ``"no_object"``) and ``iou`` (the IoU of the
observed mask, the ``Current IOU`` target). Run::

    segagent traces --out /tmp/traces_shapes --episodes 16000 --max-clicks 8 --initial-mix 0.4,0.3,0.3
    python -m agents.training.tiny_data --kind traces --traces /tmp/traces_shapes --out /tmp/tinycache/traces_train

    python -m agents.training.tiny_data --kind first --stop 14000 --out /tmp/tinycache/first_train
    python -m agents.training.tiny_data --kind later --stop 1250 --out /tmp/tinycache/later_train
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import numpy.typing as npt


from .tiny_cells import (CellOracle, cell_to_xy, deepest_cell, improving_click_label, label_cell,  # noqa: F401 (re-exported)
                         pixel_cell, prep_image)

log = logging.getLogger(__name__)
KINDS = ("first", "later", "traces", "dagger", "star_plus", "masks", "wrong_object")


@dataclass
class TinyDataConfig:
    """What :func:`build_examples` makes.

    Attributes:
        out: folder the dataset is saved to (``save_to_disk``); empty: not saved.
        kind: one of :data:`KINDS` (module docstring).
        traces: the ``segagent traces`` folder of the ``"traces"`` kind (its env and split are used).
        policy, finish_iou: the ``"dagger"`` and ``"star_plus"`` kinds' policy checkpoint, and the IoU from which the
            oracle's label is ``Finish`` (the traces' ``target_iou``).
        partial: the ``"traces"`` kind may read an unfinished traces folder (its finished chunks).
        finish_keep: share of end steps kept by the ``"traces"`` kind (class balance).
        env_id, split: the env and dataset split the items come from.
        start, stop: item indices ``start .. stop - 1`` (clipped to the split's length).
        grid: ``G`` of the ``G x G`` label grid (the model's ``loc_grid``).
        image_size: the model's input side (images are stored at that size).
        obs_size: the env observation side the images are rendered at first.
        max_clicks: clicks per later-click episode.
        initial_states: initial states drawn from (uniformly, per item) for later-click episodes.
        later_labels: ``"oracle"`` (the cell oracle's click) or ``"target"`` (a positive click on
            the target's deepest cell, whatever the mask) for later-click examples.
        masks_per_item, min_points, max_points: the ``"masks"`` kind: masks per item and the range
            of random points each is made from.
        no_target_fraction: if set, the env's dataset is built with this share of no-target items
            (``dataset_kwargs``; the Shapes datasets); None keeps the env id's own dataset.
        seed: seeds that draw and the episodes' reset seeds.
        progress: show a progress bar.
    """

    out: str = ""
    kind: str = "first"
    env_id: str = "SegAgent-Shapes-v0"
    split: str = "train"
    start: int = 0
    stop: int = 20000
    grid: int = 14
    image_size: int = 112
    obs_size: int = 224
    max_clicks: int = 5
    initial_states: list[str] = field(default_factory=lambda: ["empty", "empty", "box", "points"])
    later_labels: str = "oracle"
    traces: str = ""
    partial: bool = False
    policy: str = ""
    finish_iou: float = 0.98
    finish_keep: float = 1.0
    no_target_fraction: Optional[float] = None
    masks_per_item: int = 2
    min_points: int = 1
    max_points: int = 8
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not 0 <= self.start <= self.stop:
            raise ValueError(f"need 0 <= start <= stop, got start={self.start} stop={self.stop}")
        if self.later_labels not in ("oracle", "target"):
            raise ValueError(f"later_labels must be 'oracle' or 'target', got {self.later_labels!r}")
        if self.kind in ("dagger", "star_plus") and not self.policy:
            raise ValueError(f"kind={self.kind!r} needs --policy (a tiny checkpoint folder to roll out)")
        if self.kind == "traces" and not self.traces:
            raise ValueError("kind='traces' needs --traces (a folder made by `segagent traces`)")
        if not 0.0 <= self.finish_keep <= 1.0:
            raise ValueError(f"finish_keep must be in [0, 1], got {self.finish_keep}")
        if self.masks_per_item < 1 or not 1 <= self.min_points <= self.max_points:
            raise ValueError("need masks_per_item >= 1 and 1 <= min_points <= max_points")
        if self.grid < 1 or self.image_size < 16 or self.max_clicks < 1 or not self.initial_states:
            raise ValueError("grid >= 1, image_size >= 16, max_clicks >= 1 and some initial_states are needed")


def _make_env(config: TinyDataConfig, initial_state: str) -> Any:
    import gymnasium as gym

    import segenv  # noqa: F401  (registers the env ids)

    extra: dict = {}
    if config.no_target_fraction is not None:
        spec_kwargs = gym.spec(config.env_id).kwargs
        extra["dataset_kwargs"] = {**spec_kwargs.get("dataset_kwargs", {}), "no_target_fraction": config.no_target_fraction}
    return gym.make(config.env_id, split=config.split, max_clicks=config.max_clicks, image_size=config.obs_size,
                    initial_state=initial_state, **extra)


def first_click_examples(config: TinyDataConfig) -> list[dict]:
    """Empty-mask examples of items ``start .. stop - 1`` (no segmenter call): the first click, or
    ``No Object Found`` on an empty target."""
    from tqdm.auto import tqdm

    from segenv import render as R

    env = _make_env(config, "empty")
    dataset = env.unwrapped.dataset
    rows = []
    for i in tqdm(range(config.start, min(config.stop, len(dataset))), desc="first clicks", disable=not config.progress):
        sample = dataset[i]
        image = prep_image(R.resize_image(sample.image, config.obs_size), config.image_size)
        row = {"image": image, "text": sample.text, "sample_index": i, "step": 0, "kind": "first"}
        if not sample.mask.any():  # the text names nothing in the image; both masks empty: IoU 1
            rows.append({**row, "positive": True, "cell": 0, "action": "no_object", "iou": 1.0})
            continue
        label = label_cell(sample.mask, np.zeros_like(sample.mask), config.grid)
        if label is None:  # pragma: no cover (a non-empty target always has a deepest pixel)
            continue
        rows.append({**row, "positive": label[0], "cell": label[1], "action": "click", "iou": 0.0})
    env.close()
    return rows


def oracle_label(gt: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_], iou: float, grid: int,
                 finish_iou: float) -> tuple[str, bool, int]:
    """``(action, positive, cell)``: what the oracle answers on mask ``pred`` (observation resolution):
    ``"no_object"`` on an empty target, ``"finish"`` once ``iou >= finish_iou`` or nothing is left to
    fix, else ``"click"`` with :func:`label_cell`'s sign and cell."""
    if not gt.any():
        return "no_object", True, 0
    label = None if iou >= finish_iou else label_cell(gt, pred, grid)
    if label is None:
        return "finish", True, 0
    return "click", label[0], label[1]


class _SeesIoU:
    """A policy wrapper that remembers the true IoU of the mask each action was taken on (``info``
    carries it; the policy never reads it) and forwards everything else to the policy."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.iou, self.steps = policy, 0.0, 0

    def reset(self, obs: dict, info: dict) -> None:
        self.iou, self.steps = float(info["iou"]), 0
        self.policy.reset(obs, info)

    def act(self, obs: dict, info: dict) -> Any:
        self.iou = float(info["iou"])
        self.steps += 1
        return self.policy.act(obs, info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


def dagger_examples(config: TinyDataConfig) -> list[dict]:
    """Every state the policy ``config.policy`` visits, labelled by the oracle (module docstring).
    With ``config.kind == "star_plus"`` a policy click that raised the IoU keeps its own label."""
    from tqdm.auto import tqdm

    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from segenv import render as R
    from segenv.rollout import run_episode

    policy = _SeesIoU(MLLMPolicy(MLLMPolicyConfig(model_path=config.policy, max_new_tokens=6, device="cpu")))
    envs = {state: _make_env(config, state) for state in set(config.initial_states)}
    rng = np.random.default_rng(config.seed + config.start)
    rows: list[dict] = []
    stop = min(config.stop, len(next(iter(envs.values())).unwrapped.dataset))
    for i in tqdm(range(config.start, stop), desc="policy states", disable=not config.progress):
        state = config.initial_states[int(rng.integers(len(config.initial_states)))]

        def keep(obs_before: dict, record: Any, info_after: dict, i: int = i) -> None:
            mask = np.asarray(obs_before["mask"]) > 0
            own = improving_click_label(record, mask.shape, config.grid) if config.kind == "star_plus" else None
            if own is None:
                gt = R.resize_mask(np.asarray(info_after["gt_mask"], bool), mask.shape[0])
                action, positive, cell = oracle_label(gt, mask, policy.iou, config.grid, config.finish_iou)
            else:
                action, (positive, cell) = "click", own
            rows.append({"image": prep_image(np.asarray(obs_before["overlay"]), config.image_size),
                         "text": str(obs_before["text"]), "positive": positive, "cell": cell, "sample_index": i,
                         "step": policy.steps - 1, "kind": config.kind, "action": action, "iou": policy.iou})

        run_episode(policy, envs[state], seed=int(config.seed * 100003 + i), index=i, on_step=keep)
    for env in envs.values():
        env.close()
    return rows


def mask_examples(config: TinyDataConfig) -> list[dict]:
    """Random-point masks of items ``start .. stop - 1``, oracle-labelled (module docstring)."""
    from tqdm.auto import tqdm

    env = _make_env(config, "points")
    base = env.unwrapped
    rng = np.random.default_rng(config.seed * 1_000_003 + config.start)
    rows: list[dict] = []
    for i in tqdm(range(config.start, min(config.stop, len(base.dataset))), desc="random-point masks",
                  disable=not config.progress):
        for j in range(config.masks_per_item):
            base.initial_points = int(rng.integers(config.min_points, config.max_points + 1))  # read by reset
            obs, info = env.reset(seed=int(rng.integers(2**31)), options={"index": i})
            rows.append(labelled_observation(obs, info, config, i, j, "masks"))
    env.close()
    return rows


def labelled_observation(obs: dict, info: dict, config: TinyDataConfig, index: int, step: int, kind: str) -> dict:
    """One example row from an env observation: the overlay, the true IoU and what the oracle
    answers on that mask (:func:`oracle_label`)."""
    from segenv import render as R

    mask = np.asarray(obs["mask"]) > 0
    gt = R.resize_mask(np.asarray(info["gt_mask"], bool), mask.shape[0])
    iou = float(info["iou"])
    action, positive, cell = oracle_label(gt, mask, iou, config.grid, config.finish_iou)
    return {"image": prep_image(np.asarray(obs["overlay"]), config.image_size), "text": str(obs["text"]),
            "positive": positive, "cell": cell, "sample_index": index, "step": step, "kind": kind,
            "action": action, "iou": iou}


def later_click_examples(config: TinyDataConfig) -> list[dict]:
    """Examples from :class:`CellOracle` episodes through the rollout harness (module docstring)."""
    from tqdm.auto import tqdm

    from segenv.rollout import run_episode

    envs = {state: _make_env(config, state) for state in set(config.initial_states)}
    rng = np.random.default_rng(config.seed + config.start)
    agent = CellOracle(config.grid)
    rows: list[dict] = []
    stop = min(config.stop, len(next(iter(envs.values())).unwrapped.dataset))
    for i in tqdm(range(config.start, stop), desc="later clicks", disable=not config.progress):
        state = config.initial_states[int(rng.integers(len(config.initial_states)))]
        kept: list[int] = []
        target = None
        if config.later_labels == "target":
            gt = envs[state].unwrapped.dataset[i].mask
            target = label_cell(gt, np.zeros_like(gt), config.grid)

        def keep(obs_before: dict, record: Any, info_after: dict, state: str = state, kept: list = kept,
                 target: Optional[tuple[bool, int]] = target) -> None:
            step = len(kept)
            kept.append(step)
            if agent.label is None or record.invalid or record.iou <= agent.iou + 1e-6:
                return
            if step == 0 and state == "empty":
                return
            positive, cell = agent.label if target is None else (True, target[1])
            rows.append({"image": prep_image(np.asarray(obs_before["overlay"]), config.image_size),
                         "text": str(obs_before["text"]), "positive": positive, "cell": cell,
                         "sample_index": i, "step": step, "kind": "later",
                         "action": "click", "iou": agent.iou})

        run_episode(agent, envs[state], seed=int(config.seed * 100003 + i), index=i, catch_agent_errors=False,
                    on_step=keep)
    for env in envs.values():
        env.close()
    return rows


def trace_examples(config: TinyDataConfig) -> list[dict]:
    """Examples from every kept step of the ``segagent traces`` folder ``config.traces`` (module docstring)."""
    from tqdm.auto import tqdm

    from segenv import render as R

    from .trace_sft import _regenerated_images, load_traces
    from .trace_store import trace_config_of
    from .traces import TraceConfig
    from .traces import _make_env as make_trace_env

    traces = load_traces(config.traces, partial=config.partial)
    made = trace_config_of(traces)
    env = make_trace_env(TraceConfig(out="", env_id=made["env_id"], split=made["split"], env_kwargs=made["env_kwargs"],
                                     shard=0, num_shards=1), "empty")
    dataset = env.unwrapped.dataset
    regenerate = _regenerated_images(traces) if len(traces) and traces[0]["image"] is None else None
    green = R.COLORS["green"]
    rng = np.random.default_rng(config.seed)
    rows: list[dict] = []
    for row in tqdm(traces, desc="trace steps", disable=not config.progress):
        index = int(row["sample_index"])
        image = np.asarray(row["image"].convert("RGB")) if regenerate is None else regenerate(index)
        gt_full = np.asarray(dataset[index].mask, bool)
        for k, kind in enumerate(row["kind"]):
            if kind != "click" and rng.random() >= config.finish_keep:
                continue
            mask = np.asarray(row["masks"][k]).astype(bool)
            size = mask.shape[0]
            if image.shape[:2] != mask.shape:
                image = R.resize_image(image, size)
            positive, cell = True, 0
            if kind == "click":
                positive = bool(row["positive"][k])
                gt = R.resize_mask(gt_full, size)
                region = (gt & ~mask) if positive else (~gt & mask)
                cell = deepest_cell(region, config.grid)
                if cell is None:
                    y, x = row["y"][k], row["x"][k]
                    cell = pixel_cell(int(y * size), int(x * size), size, size, config.grid)
            overlay = R.overlay_mask(image, mask, green, 0.5)
            rows.append({"image": prep_image(overlay, config.image_size), "text": str(row["caption"]),
                         "positive": positive, "cell": int(cell), "sample_index": index, "step": k,
                         "kind": "traces", "action": kind, "iou": float(row["iou_before"][k])})
    env.close()
    return rows


EXAMPLES_META = "segagent_tiny_data.json"  # beside the saved examples: kind, label grid, items


def example_grid(folder: str) -> int:
    """The label grid of the examples saved in ``folder`` (folders written before the grid was
    recorded were all labelled on the 14x14 grid)."""
    path = os.path.join(folder, EXAMPLES_META)
    if not os.path.exists(path):
        return 14
    with open(path) as f:
        return int(json.load(f)["grid"])


def features():
    """The ``datasets.Features`` of the examples."""
    from datasets import Features, Image, Value

    return Features({"image": Image(), "text": Value("string"), "positive": Value("bool"), "cell": Value("int64"),
                     "sample_index": Value("int64"), "step": Value("int32"), "kind": Value("string"),
                     "action": Value("string"), "iou": Value("float32")})


def build_examples(config: TinyDataConfig):
    """The examples of ``config`` as a ``datasets.Dataset`` (saved to ``config.out`` if set)."""
    from datasets import Dataset

    from agents.training.tiny_wrong_object import wrong_object_examples

    build = {"first": first_click_examples, "later": later_click_examples, "traces": trace_examples,
             "dagger": dagger_examples, "star_plus": dagger_examples, "masks": mask_examples, "wrong_object": wrong_object_examples}[config.kind]
    rows = build(config)
    if not rows:
        raise ValueError(
            f"no {config.kind!r} examples from items {config.start}..{config.stop - 1} of {config.env_id} "
            f"split {config.split!r}: the range is past the split's end, or every item was skipped; "
            "pick --start/--stop inside the split (nothing was written)")
    feats = features()
    ds = Dataset.from_dict({k: [r[k] for r in rows] for k in feats}, features=feats)
    if config.out:
        ds.save_to_disk(config.out)
        with open(os.path.join(config.out, EXAMPLES_META), "w") as f:
            json.dump({"kind": config.kind, "grid": config.grid, "env_id": config.env_id, "split": config.split,
                       "start": config.start, "stop": config.stop, "examples": len(ds)}, f, indent=1)
        log.info("%d %s-click examples -> %s", len(ds), config.kind, config.out)
    return ds


def main(argv: Optional[list[str]] = None) -> None:
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(TinyDataConfig).parse_args_into_dataclasses(args=argv)
    if not config.out:
        raise SystemExit("give --out (the folder the examples are saved to)")
    logging.basicConfig(level=logging.INFO)
    build_examples(config)


__all__ = ["CellOracle", "EXAMPLES_META", "TinyDataConfig", "build_examples", "cell_to_xy", "dagger_examples", "deepest_cell", "example_grid",
           "features", "first_click_examples", "improving_click_label", "label_cell", "labelled_observation", "later_click_examples", "mask_examples", "oracle_label", "pixel_cell",
           "prep_image", "trace_examples"]

if __name__ == "__main__":
    main()
