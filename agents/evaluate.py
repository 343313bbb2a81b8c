"""The evaluation core: roll any agent out on any env id and report the paper's numbers.

What ``benchmarks/run.py`` and ``segagent bench`` both call (it lives in the package so that the
package never imports ``benchmarks``): :class:`EvalArgs` (the flags, defaults and help in one
dataclass), :func:`parse_args` and :func:`evaluate`::

    python benchmarks/run.py --agent oracle --env SegAgent-Shapes-v0 --episodes 100 --max-clicks 5
    segagent bench --agent oracle --env SegAgent-Shapes-v0 --episodes 100 --max-clicks 5

Episodes run through :func:`segenv.rollout.run_episode` (episode ``k``: sample ``k``, seed
``seed + k``). It prints a table, shows a progress bar, appends every finished episode to
``OUT.episodes.jsonl`` as it goes (``--resume`` continues an interrupted run without redoing
those episodes; a corrupt sample is skipped and recorded), and writes ``OUT`` (JSON summary:
agent, env, split, segmenter, episodes, miou, ciou, miou_per_click, noc85, noc90, nof90,
invalid_step_rate, seconds_per_click, env_overhead_fraction, ...) with ``OUT.png`` (mIoU against
clicks) and, with ``--sheet N``, a trajectory sheet of the first N episodes (``OUT.sheet.png``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence

import gymnasium as gym
import numpy as np

import segenv  # noqa: F401  (registers the env ids)
from agents.cliargs import add_dataclass_arguments, arg, build_or_exit
from agents.registry import make_agent
from segenv.render import caption, image_sheet
from segenv.rollout import StepRecord, Trajectory, run_episode, summarize

log = logging.getLogger("segagent.bench")


#: ``--protocol``: named sets of arguments. ``segagent`` is SegAgent's released evaluation
#: (docs/conventions.md#metrics): the mask the model rated highest (``eval_result_iou.py``; ``final``
#: is reported beside it), the first 5,000 items, the box as step 1, the overlay as a JPEG, and
#: empty targets scored (an empty union counts 1, as its scripts do). Click-to-pixel, SAM's resize
#: and the dtype (``auto``: bf16 on CUDA) already follow the released code by default.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "standard": {},
    "segagent": {"score": "best_predicted", "limit": 5000, "box_step": "counted", "overlay_format": "jpeg",
                 "empty_targets": "keep"},
}


@dataclass(kw_only=True)
class EvalArgs:
    """Roll any agent out on any env id and report the paper's numbers (benchmarks/run.py, segagent bench)."""

    agent: str = arg("oracle", "a registered agent: oracle, random, scripted, mllm, tree (PRM-guided search), sb3 or your own (agents.registry)")
    env: str = arg("SegAgent-Shapes-v0", "a registered env id, e.g. SegAgent-RefCOCO-v0")
    split: Optional[str] = arg(None, "dataset split (default: the env id's)")
    episodes: int = arg(50, "number of episodes; 0 = the whole split; capped at its size")
    max_clicks: int = arg(5, "clicks per episode (the env's max_clicks)")
    noc_max_clicks: Optional[int] = arg(None, "cap for NoC/NoF (default: --max-clicks; RITM uses 20)")
    segmenter: Optional[str] = arg(None, "clicknet, grabcut, sam:/path/sam_vit_h.pth, hf:/path/folder (default: the env id's: clicknet on Shapes, grabcut elsewhere)")
    seed: int = arg(0, "episode k resets with seed + k (the env's random draws, e.g. --initial-state points) and "
                       "the agent is seeded with it (random agent, oracle's random ties); the items are always "
                       "the first N of the split, in order")
    out: Optional[str] = arg(None, "summary JSON path (default: results/<agent>-<env>.json)")
    model: Optional[str] = arg(None, "mllm: a local checkpoint folder (default: the shipped tiny model); sb3: RUN/model.zip")
    temperature: float = arg(0.0, "mllm, sb3: sampling temperature, 0 = greedy / argmax")
    dtype: str = arg("auto", "mllm: model dtype (auto = bf16 on CUDA, fp32 on CPU; float32, bfloat16, float16)")
    overlay_format: Literal["png", "jpeg"] = arg("png", "mllm: the overlay as the model sees it: png (as is) or jpeg "
                                                  "(saved at quality 75 as Pillow does unasked, as SegAgent's released loop)")
    trust_remote_code: bool = arg(False, "mllm: allow a checkpoint that ships its own model code (the released "
                                   "SegAgent-Qwen, a Qwen-VL-Chat fine-tune): that code RUNS; only for folders you trust")
    end_actions: bool = arg(True, "mllm: no Finish / No Object Found answers (banned in decoding): a fixed click budget")
    no_object_bias: float = arg(0.0, "mllm: a logit bias added to the first token of 'No Object Found' where an "
                                "action may begin (a decision threshold, issue #21); 0 = the model as trained")
    iou_readout: Literal["greedy", "median", "mean"] = arg("greedy", "mllm: the 'Current IOU' number the policy writes before "
                                                          "its action: the top bin, or its distribution's median / mean (agents/mllm/iou_readout.py)")
    finish_iou: Optional[float] = arg(None, "oracle: answer Finish once the IoU reaches this (unset: only when "
                                      "nothing is left to fix, so it uses its whole budget as RITM's protocol)")
    search_k: int = arg(4, "tree: candidate clicks per step (the greedy one included), scored by the PRM in one batch")
    search_margin: float = arg(0.0, "tree: answer Finish when no candidate's predicted IoU beats the current mask's by more than this (IoU fraction)")
    search_stop: bool = arg(True, "tree: never stop on the PRM's say-so (click until --max-clicks; the policy's own "
                            "Finish still ends the episode)")
    prm_model: Optional[str] = arg(None, "tree: a separate reward-model checkpoint folder (default: the policy judges its own masks)")
    search_proposals: Literal["sample", "beam"] = arg(
        "sample", "tree: how candidates are drawn: sampled at --temperature, or the k most likely actions by beam search")
    search_tie_margin: float = arg(0.0, "tree: take the most likely candidate whose predicted IoU is within this of "
                                   "the best (IoU fraction; 0 = the best)")
    prm_readout: Literal["greedy", "median", "mean"] = arg(
        "greedy", "tree: how the PRM's IoU line is read: the stated number, or the median / mean of the model's "
        "distribution over its IoU value tokens (agents/prm.py)")
    initial_state: Literal["empty", "box", "points", "text"] = arg(
        "empty", "the initial mask (paper B.1); text = the --text-segmenter's mask for the expression (Tab. 5 row)")
    text_segmenter: Optional[str] = arg(None, "text segmenter for --initial-state text and --agent sam3-text: "
                                        "sam3:/path/to/sam3 (SAM 3's text model, a local folder of model_type 'sam3')")
    box_step: Literal["counted", "free"] = arg(
        "counted", "with --initial-state box: counted = the box is step 1 of --max-clicks, as SegAgent's released "
        "loop; free = the box is given before the clicks and uses none of them")
    image_size: Optional[int] = arg(None, "observation size S (default: the env's, 512)")
    target_iou: Optional[float] = arg(None, "end an episode once IoU reaches this (default: never)")
    data_root: Optional[str] = arg(None, "dataset root (default: $SEGAGENT_DATA)")
    sheet: int = arg(0, "save a trajectory sheet of the first N episodes")
    score: Literal["final", "best_predicted", "best_so_far"] = arg(
        "final", "which mask of an episode is scored: final, best_predicted (the mask the agent "
        "rated highest with its Current IOU line, as SegAgent's eval_result_iou.py) or best_so_far (an upper "
        "bound that uses the ground truth); every rule is also reported side by side")
    limit: Optional[int] = arg(None, "score only the first N items of the split (5000: the items SegAgent's "
                               "released refcocog_eval.py scores); unset: the whole split")
    empty_targets: Literal["auto", "skip", "keep"] = arg(
        "auto", "items whose ground truth is empty score IoU 1 on an empty mask: skip = leave them out of the "
        "numbers (counted in empty_targets_skipped, with a warning); keep = score them as SegAgent's scripts do; "
        "auto = keep them where the dataset makes them on purpose (no-target variants: NoObject is the answer), "
        "else skip")
    protocol: Literal["standard", "segagent"] = arg(
        "standard", "standard = the flags as given; segagent = SegAgent's released evaluation in one flag: --score best_predicted --limit 5000 "
        "--box-step counted --overlay-format jpeg --empty-targets keep (these override the same flags)")
    shard: Optional[int] = arg(None, "this process's part of the episodes (k mod num_shards == shard); unset: "
                               "$RANK as torchrun sets it, else 0")
    num_shards: Optional[int] = arg(None, "processes sharing the run; unset: $WORLD_SIZE (torchrun), else 1. "
                                    "Each writes OUT's shard files; the last to finish merges them into OUT")
    resume: bool = arg(False, "skip episodes already in OUT.episodes.jsonl (refused if the run's arguments differ)")
    progress: bool = arg(True, "no progress bar")

    def __post_init__(self) -> None:
        if self.episodes < 0 or self.max_clicks < 1:
            raise ValueError("--episodes must be >= 0 and --max-clicks >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if not math.isfinite(self.no_object_bias):
            raise ValueError(f"--no-object-bias must be a finite number (a logit bias), got {self.no_object_bias}")
        for key, value in PROTOCOLS[self.protocol].items():
            setattr(self, key, value)
        if self.num_shards is None:
            self.num_shards = int(os.environ.get("WORLD_SIZE", 1))
        if self.shard is None:
            self.shard = int(os.environ.get("RANK", 0))
        if not 0 <= self.shard < self.num_shards:
            raise ValueError(f"need 0 <= shard < num_shards, got shard={self.shard} num_shards={self.num_shards}")


RunArgs = EvalArgs  # the name benchmarks/run.py had


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The ``benchmarks/run.py`` / ``segagent bench`` flags, generated from :class:`EvalArgs`."""
    parser = parser or argparse.ArgumentParser(description=EvalArgs.__doc__)
    return add_dataclass_arguments(parser, EvalArgs)


def parse_args(argv: Optional[Sequence[str]] = None) -> EvalArgs:
    parser = build_parser()
    return build_or_exit(parser, EvalArgs, parser.parse_args(argv))


def make_env(args: EvalArgs, render: bool = False) -> gym.Env:
    kwargs: dict = {"max_clicks": args.max_clicks, "initial_state": args.initial_state, "target_iou": args.target_iou}
    if args.text_segmenter is not None:
        kwargs["text_segmenter"] = args.text_segmenter
    if args.initial_state == "box":
        kwargs["box_step"] = args.box_step == "counted"
    for key, value in (("split", args.split), ("segmenter", args.segmenter), ("image_size", args.image_size), ("data_root", args.data_root)):
        if value is not None:
            kwargs[key] = value
    if render:
        kwargs["render_mode"] = "rgb_array"
    # gymnasium's passive checker breaks on the first step when the first reset raised (it keeps
    # None as "previous data"), and a corrupt first sample is skipped here, not fatal; the env
    # itself is checked by check_env in the tests.
    return gym.make(args.env, disable_env_checker=True, **kwargs)


# the arguments that decide what a run's episodes are: --resume refuses a run whose values differ
RUN_IDENTITY = ("agent", "env", "split", "seed", "max_clicks", "segmenter", "model", "temperature", "end_actions", "dtype", "finish_iou",
                "overlay_format", "no_object_bias", "iou_readout", "search_k", "search_margin", "search_stop", "prm_model", "prm_readout", "search_proposals", "search_tie_margin",
                "initial_state", "text_segmenter", "box_step", "image_size", "target_iou", "data_root", "score", "limit",
                "empty_targets", "protocol")


def _load_done(path: Path) -> tuple[dict[int, Trajectory], dict[int, dict]]:
    """Episodes (by episode number) and skipped episodes already in ``OUT.episodes.jsonl``.

    Lines written before episode numbers were recorded count in order. A line cut by a kill ends
    the read: that episode is redone.
    """
    done: dict[int, Trajectory] = {}
    skipped: dict[int, dict] = {}
    if not path.exists():
        return done, skipped
    for k, line in enumerate(path.read_text().splitlines()):
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            break
        episode = int(d.pop("episode", k))
        if "skipped" in d:
            skipped[episode] = d["skipped"]
            continue
        d.pop("ious", None)
        d["steps"] = [StepRecord(**s) for s in d["steps"]]
        done[episode] = Trajectory(**d)
    return done, skipped


def _check_resume(args: EvalArgs, run_path: Path) -> None:
    """Refuse to resume a run made with other arguments (the identity is in ``OUT.run.json``)."""
    if not run_path.exists():
        return
    before = json.loads(run_path.read_text())
    now = {k: getattr(args, k) for k in RUN_IDENTITY}
    # a key the file lacks predates its flag: that run used the flag's default
    before = {k: before.get(k, getattr(EvalArgs.__dataclass_fields__.get(k), "default", None)) for k in RUN_IDENTITY}
    diff = {k: (before[k], now[k]) for k in RUN_IDENTITY if before[k] != now[k]}
    if diff:
        said = ", ".join(f"--{k.replace('_', '-')} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"--resume: {run_path} was made with other arguments ({said}); rerun with the same "
                         "arguments, or drop --resume (or pass another --out) to start afresh")


def plot_curve(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.arange(1, len(summary["miou_per_click"]) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(ks, summary["miou_per_click"], "o-", label="mIoU after click k")
    ax.plot(ks, summary["best_iou_per_click"], "--", alpha=0.7, label="best IoU so far")
    ax.set_xlabel("click")
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.set_title(f"{summary['agent']} on {summary['env']} ({summary['segmenter']})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse the flags (default ``sys.argv[1:]``) and :func:`evaluate`; return the summary."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return evaluate(parse_args(argv))


def evaluate(args: EvalArgs) -> dict:
    """Run ``args.episodes`` episodes through :func:`segenv.rollout.run_episode`, write ``OUT``,
    ``OUT.episodes.jsonl``, ``OUT.png`` (and ``OUT.sheet.png``), print the table, return the summary."""
    out = Path(args.out or f"results/{args.agent}-{args.env}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    agent = make_agent(args.agent, seed=args.seed, model=args.model, temperature=args.temperature,
                       allow_end=args.end_actions, dtype=args.dtype, overlay_format=args.overlay_format,
                       no_object_bias=args.no_object_bias, iou_readout=args.iou_readout,
                       trust_remote_code=args.trust_remote_code, finish_iou=args.finish_iou,
                       text_segmenter=args.text_segmenter, search_k=args.search_k, search_margin=args.search_margin,
                       search_stop=args.search_stop, prm_model=args.prm_model, prm_readout=args.prm_readout,
                       search_proposals=args.search_proposals, search_tie_margin=args.search_tie_margin)
    args = with_agent_overrides(args, agent)
    if args.num_shards > 1:  # sharded (torchrun): this process's part, then the merge if all parts are done
        from .eval_shards import merge_shards, shard_path

        part = shard_path(out, args.shard, args.num_shards)
        with output_lock(part):
            _evaluate_locked(args, part, agent)
        return merge_shards(args, out)
    with output_lock(out):
        return _evaluate_locked(args, out, agent)


def with_agent_overrides(args: EvalArgs, agent: Any) -> EvalArgs:
    """``args`` with the env arguments the agent says it needs (``agent.env_overrides``: e.g. the
    ``sam3-text`` baseline starts every episode from the text mask), so the run's identity, the
    summary and every shard record what was actually run. A flag given that contradicts it is an error."""
    overrides = dict(getattr(agent, "env_overrides", None) or {})
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise ValueError(f"agent {args.agent!r} needs env argument {key}={value!r}, which the harness cannot set")
        given, default = getattr(args, key), EvalArgs.__dataclass_fields__[key].default
        if given not in (default, value):
            raise ValueError(f"--agent {args.agent} runs with --{key.replace('_', '-')} {value}; "
                             f"got --{key.replace('_', '-')} {given}")
    return replace(args, **overrides) if overrides else args


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT.lock`` for the whole run: a second run on the same ``--out`` is refused with a
    clear message instead of interleaving its episodes with ours or overwriting our result.

    An advisory ``flock`` (Linux/macOS; released by the OS if the process dies, so a killed run
    never leaves a stale lock behind). Where ``fcntl`` does not exist, runs are not locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path = out.with_suffix(".lock")
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"{out} is being written by another run (it holds {lock_path}); pass another --out, "
                "or wait for that run to finish (then --resume continues it)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _evaluate_locked(args: EvalArgs, out: Path, agent: Any) -> dict:
    episodes_path = out.with_suffix(".episodes.jsonl")
    env = make_env(args, render=args.sheet > 0)
    base = env.unwrapped

    run_path = out.with_suffix(".run.json")
    if args.resume:
        _check_resume(args, run_path)
    done, skipped_before = _load_done(episodes_path) if args.resume else ({}, {})
    if not args.resume and episodes_path.exists():
        episodes_path.unlink()
    run_path.write_text(json.dumps({k: getattr(args, k) for k in RUN_IDENTITY}, indent=1))
    n = len(base.dataset)
    if args.limit is not None and args.limit < n:
        n = args.limit
    if args.episodes == 0 or args.episodes > n:
        if args.episodes > n:
            log.warning("--episodes %d > %d samples in the split: running each sample once", args.episodes, n)
        args = replace(args, episodes=n)
    sheet_rows: list[list[np.ndarray]] = []
    skipped = [skipped_before[k] for k in sorted(skipped_before) if k < args.episodes]
    by_episode = {k: t for k, t in done.items() if k < args.episodes}
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    todo = [k for k in range(args.episodes) if k not in by_episode and k not in skipped_before
            and k % args.num_shards == args.shard]
    with episodes_path.open("a") as sink:
        for k in tqdm(todo, desc=f"{args.agent} on {args.env}", disable=not args.progress):
            frames: list[np.ndarray] = []
            on_step = None
            if k < args.sheet:
                on_step = lambda obs, rec, info: frames.append(base.render())  # noqa: E731
            try:
                traj = run_episode(agent, env, seed=args.seed + k, index=k % n, on_step=on_step)
            except (ValueError, OSError) as exc:  # a corrupt sample must not end a long run
                log.warning("episode %d (sample %d) skipped: %s", k, k % n, exc)
                record = {"episode": k, "sample_index": k % n, "error": f"{type(exc).__name__}: {exc}"}
                skipped.append(record)
                sink.write(json.dumps({"episode": k, "skipped": record}) + "\n")
                sink.flush()
                continue
            by_episode[k] = traj
            sink.write(json.dumps({"episode": k, **traj.to_dict()}) + "\n")
            sink.flush()
            if k < args.sheet and frames:
                sheet_rows.append(_sheet_row(base, k % n, traj, frames))
    wall = time.perf_counter() - t_start
    trajs = [by_episode[k] for k in sorted(by_episode)]
    skip_empty = args.empty_targets == "skip" or (
        args.empty_targets == "auto" and not getattr(base.dataset, "no_target_items", False))
    meta = {"split": getattr(base.dataset, "split", args.split), "segmenter": getattr(base.segmenter, "name", str(args.segmenter))}
    agent_stats = getattr(agent, "stats", None)  # e.g. tree search's candidates scored and why it stopped
    if callable(getattr(agent_stats, "to_dict", None)):
        meta["agent_stats"] = agent_stats.to_dict()
    summary = build_summary(args, meta, trajs, skipped, wall, skip_empty)
    out.write_text(json.dumps(summary, indent=2))
    plot_curve(summary, out.with_suffix(".png"))
    if sheet_rows:
        import cv2

        cv2.imwrite(str(out.with_suffix(".sheet.png")), cv2.cvtColor(image_sheet(sheet_rows), cv2.COLOR_RGB2BGR))
    print(format_table(summary))
    print(f"wrote {out}, {out.with_suffix('.png')}, {episodes_path}")
    env.close()
    return summary


def build_summary(args: EvalArgs, meta: dict, trajs: list, skipped: list, wall: float, skip_empty: bool) -> dict:
    """The result JSON of a run: its identity, :func:`segenv.rollout.summarize` of the episodes
    (items with an empty ground truth left out when ``skip_empty``), the skipped samples, the wall time."""
    empty = [t for t in trajs if t.empty_target] if skip_empty else []
    if empty:
        log.warning("%d items have an empty ground truth and are left out of the numbers "
                    "(--empty-targets keep scores them, IoU 1 for an empty mask)", len(empty))
        trajs = [t for t in trajs if not t.empty_target]
    return {
        "agent": args.agent,
        "env": args.env,
        **meta,
        "max_clicks": args.max_clicks,
        "initial_state": args.initial_state,
        "text_segmenter": args.text_segmenter,
        "seed": args.seed,
        "model": args.model,
        "protocol": args.protocol,
        "limit": args.limit,
        "empty_targets": "skip" if skip_empty else "keep",
        "empty_targets_skipped": len(empty),
        **summarize(trajs, args.max_clicks, args.noc_max_clicks, score=args.score),
        "skipped_episodes": skipped,
        "wall_seconds": wall,
        "args": asdict(args),
    }


def _sheet_row(base, index: int, traj: Trajectory, frames: list[np.ndarray]) -> list[np.ndarray]:
    """One row of the trajectory sheet: the initial image, then each step's frame, captioned."""
    small = [_thumb(_initial_frame(base, index, base.image_size))] + [_thumb(f) for f in frames]
    labels = [traj.text] + [f"{i + 1}: IoU {s.iou:.2f}" for i, s in enumerate(traj.steps)]
    return [caption(f, t) for f, t in zip(small, labels)]


def _initial_frame(base, index: int, size: int) -> np.ndarray:
    from segenv.render import resize_image

    return resize_image(base.dataset[index].image, size)


def _thumb(frame: np.ndarray, size: int = 192) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def format_table(s: dict) -> str:
    curve = " ".join(f"{v:.3f}" for v in s["miou_per_click"])
    rows = [
        ("agent / env", f"{s['agent']} / {s['env']} [{s['split']}] / {s['segmenter']}"),
        ("episodes, steps", f"{s['episodes']}, {s['steps']}"),
        (f"mIoU, cIoU ({s.get('score_rule', 'final')} mask)", f"{s['miou']:.4f}, {s['ciou']:.4f}"),
        ("mIoU by scoring rule", ", ".join(f"{r} {v:.4f}" for r, v in s.get("miou_by_rule", {}).items())),
        ("mIoU per click", curve),
        ("NoC@85, NoC@90, NoF@90", f"{s['noc85']:.2f}, {s['noc90']:.2f}, {s['nof90']} (max {s['noc_max_clicks']})"),
        ("first-click hit rate", f"{s['first_click_hit_rate']:.3f}"),
        ("invalid step rate", f"{s['invalid_step_rate']:.3f}"),
        ("s per click (agent/seg/env)", f"{s['seconds_per_click']:.4f} ({s['agent_seconds_per_click']:.4f}/{s['segmenter_seconds_per_click']:.4f}/{s['env_seconds_per_click']:.4f})"),
        ("env overhead fraction", f"{s['env_overhead_fraction']:.3f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

