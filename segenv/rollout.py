"""THE rollout harness: every benchmark, training script and test runs agents through here.

An agent is any object with ``reset(obs, info)`` and ``act(obs, info)`` (structural typing: the
:class:`AgentLike` protocol; ``segenv`` never imports ``agents``). ``act`` returns an action the
env accepts (:mod:`segenv.actions`: one vocabulary for env, harness and agents), ``None`` for an
invalid step (e.g. unparsable model text), :data:`STOP` (which *is* a
:class:`segenv.actions.Finish`) to end the episode and keep the mask, or
:class:`segenv.actions.NoObject` to end it with an empty mask. Both end actions go through
``env.step`` like any action and are recorded as a step (kind 3 / 4); RL agents reach them
through the env's ``action_mode="full"``. The :class:`Trajectory` says which action ended the
episode (``end_action``). Agents see ``info`` without ``gt_mask`` unless they set
``needs_gt = True``. An agent that defines ``attach_lookahead(lookahead)`` (a planner) gets a
:class:`segenv.lookahead.Lookahead` of the env before each episode: it previews the masks of
candidate actions, never the ground truth. If an agent sets ``last_output`` (e.g. the raw text a model generated), it
is recorded with the step.

A malformed action (``ValueError`` from the env) becomes a recorded invalid step, never a crash
mid-benchmark; so does an exception inside ``act`` when ``catch_agent_errors=True``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from .actions import INVALID, KIND_FINISH, KIND_NO_OBJECT, STOP, action_to_array, action_to_space, end_action_name, parse_action
from .lookahead import attach_lookahead

__all__ = ["INVALID", "SCORE_RULES", "STOP", "StepRecord", "Trajectory", "run_episode", "run_episodes", "run_vector", "summarize"]
# STOP and INVALID live in segenv.actions (one vocabulary); they stay importable from here.

log = logging.getLogger(__name__)


GT_KEYS = frozenset({"gt_mask", "gt_ignore"})


class AgentLike(Protocol):
    def reset(self, obs: dict, info: dict) -> None: ...

    def act(self, obs: dict, info: dict) -> Any: ...


@dataclass
class StepRecord:
    """One step: the action as ``[kind, x, y, x1, y1]`` (None if invalid) and what it did.

    ``predicted_iou`` is the agent's own IoU estimate of the mask it acted on (its ``last_iou``
    attribute after ``act``, e.g. SegAgent's ``Current IOU`` line), None when it states none;
    ``intersection`` / ``union`` are the pixel counts of the mask after the step (for cIoU).
    """

    action: Optional[list[float]]
    iou: float
    reward: float
    invalid: bool
    output: Optional[str] = None
    error: Optional[str] = None
    agent_seconds: float = 0.0
    segmenter_seconds: float = 0.0
    env_seconds: float = 0.0
    predicted_iou: Optional[float] = None
    intersection: int = 0
    union: int = 0


@dataclass
class Trajectory:
    """One episode: the sample, the initial IoU and the steps; JSON-ready via ``to_dict``."""

    sample_id: str
    sample_index: int
    text: str
    initial_iou: float
    steps: list[StepRecord] = field(default_factory=list)
    intersection: int = 0
    union: int = 0
    stopped: bool = False  # the agent ended the episode itself (Finish or NoObject)
    end_action: Optional[str] = None  # "finish", "no_object", "target_iou" or None (budget ran out)
    empty_target: bool = False  # the ground truth is empty (a no-target item); from the env, not the agent
    initial_intersection: int = 0  # pixel counts of the initial mask (for cIoU of a re-scored episode)
    initial_union: int = 0

    @property
    def ious(self) -> list[float]:
        """IoU after each step (click index 1, 2, ...; a final ``Finish`` repeats the last IoU,
        a final ``NoObject`` gives the IoU of the empty mask)."""
        return [s.iou for s in self.steps]

    @property
    def final_iou(self) -> float:
        return self.steps[-1].iou if self.steps else self.initial_iou

    @property
    def clicks_used(self) -> int:
        """Steps that used a click (clicks, the box, invalid steps): all but ``Finish`` / ``NoObject``."""
        return sum(not _is_end_record(s) for s in self.steps)

    def scored(self, rule: str = "final") -> tuple[float, int, int]:
        """``(iou, intersection, union)`` of the mask that ``rule`` scores (:data:`SCORE_RULES`).

        * ``"final"``: the mask after the last step (segagent's default; SegAgent's
          ``refcocog_eval.py``);
        * ``"best_predicted"``: the mask the agent rated highest (SegAgent's ``eval_result_iou.py``):
          the step with the largest ``predicted_iou`` (the first such step on ties), scored with the
          mask that IoU was predicted FOR, the one it saw before acting (the initial mask for the first
          step); the final mask when no step states an IoU;
        * ``"best_so_far"``: the best mask of the episode by the ground truth: an UPPER BOUND no
          annotator without the ground truth can reach, reported only beside the others.
        """
        masks = [(self.initial_iou, self.initial_intersection, self.initial_union)]
        masks += [(s.iou, s.intersection, s.union) for s in self.steps]
        if rule == "final":
            return masks[-1]
        if rule == "best_so_far":
            return max(masks, key=lambda m: m[0])  # first maximum
        if rule == "best_predicted":
            stated = [(s.predicted_iou, k) for k, s in enumerate(self.steps) if s.predicted_iou is not None]
            if not stated:
                return masks[-1]
            best = max(p for p, _ in stated)
            k = next(k for p, k in stated if p == best)
            return masks[k]  # masks[k] is the mask before step k
        raise ValueError(f"unknown score rule {rule!r}; use one of {SCORE_RULES}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ious"] = self.ious
        return d


def strip_gt(info: dict) -> dict:
    """``info`` without the ground truth, for agents that must not see it."""
    return {k: v for k, v in info.items() if k not in GT_KEYS}


def _to_record(action: Any) -> Optional[list[float]]:
    if action is None or action is INVALID:
        return None
    return action_to_array(action).astype(float).tolist()


def _new_trajectory(info: dict, obs: dict) -> Trajectory:
    """The record of an episode that just reset (``info`` with the ground truth, from the env)."""
    traj = Trajectory(info["sample_id"], int(info.get("sample_index", -1)), obs["text"], float(info["iou"]))
    traj.intersection, traj.union = int(info.get("intersection", 0)), int(info.get("union", 0))
    traj.initial_intersection, traj.initial_union = traj.intersection, traj.union
    if info.get("box_step"):  # the env spent step 1 on the GT box (SegAgent's released loop): record it
        traj.initial_iou = float(info["iou_before_box"])
        traj.initial_intersection = int(info["intersection_before_box"])
        traj.initial_union = int(info["union_before_box"])
        box = [2.0, *(float(v) for v in info.get("box", (0.0, 0.0, 0.0, 0.0)))]
        traj.steps.append(StepRecord(box, float(info["iou"]), float(info["iou"]) - traj.initial_iou, False,
                                     intersection=traj.intersection, union=traj.union))
    if "gt_mask" in info:
        traj.empty_target = not np.asarray(info["gt_mask"]).any()
    return traj


def _record_end(traj: Trajectory, info: dict) -> None:
    traj.end_action = info.get("end_action")
    traj.stopped = traj.end_action in ("finish", "no_object")


def run_episode(
    agent: AgentLike,
    env: Any,
    *,
    seed: Optional[int] = None,
    index: Optional[int] = None,
    catch_agent_errors: bool = True,
    on_step: Optional[Callable[[dict, StepRecord, dict], None]] = None,
) -> Trajectory:
    """Run one episode of ``agent`` in a single (not vector) env and record it.

    ``on_step(obs_before, record, info_after)`` is called after every step (trace generation
    uses it to keep the observation the action was taken from).
    """
    options = {"index": index} if index is not None else None
    obs, info = env.reset(seed=seed, options=options)
    base = env.unwrapped
    needs_gt = bool(getattr(agent, "needs_gt", False))
    view = (lambda i: i) if needs_gt else strip_gt
    attach_lookahead(agent, base)  # planners (tree search) preview candidate actions; GT-free
    agent.reset(obs, view(info))
    traj = _new_trajectory(info, obs)
    done = False
    while not done:
        output, error = None, None
        t0 = time.perf_counter()
        try:
            action = agent.act(obs, view(info))
        except Exception as exc:  # a policy bug must not kill a long benchmark; it is recorded
            if not catch_agent_errors:
                raise
            log.warning("agent raised %s on %s; recorded as an invalid step", exc, traj.sample_id)
            action, error = None, f"{type(exc).__name__}: {exc}"
        t1 = time.perf_counter()
        output = getattr(agent, "last_output", None)
        predicted = None if error is not None else _predicted(agent)  # a raising agent states nothing new
        try:
            if action is not None and action is not INVALID:
                action = parse_action(action)  # once here; the env takes the typed action as is
            record_action = _to_record(action)
            next_obs, reward, terminated, truncated, info = env.step(action)
        except ValueError as exc:  # malformed action: the env changed nothing; count it invalid
            error = f"ValueError: {exc}"
            record_action = None
            next_obs, reward, terminated, truncated, info = env.step(INVALID)
        t2 = time.perf_counter()
        seg = float(getattr(base, "last_segmenter_seconds", 0.0))
        record = StepRecord(
            action=record_action,
            iou=float(info["iou"]),
            reward=float(reward),
            invalid=bool(info.get("invalid", False)),
            output=output,
            error=error,
            agent_seconds=t1 - t0,
            segmenter_seconds=seg,
            env_seconds=max(0.0, (t2 - t1) - seg),
            predicted_iou=predicted,
            intersection=int(info.get("intersection", 0)),
            union=int(info.get("union", 0)),
        )
        traj.steps.append(record)
        traj.intersection, traj.union = int(info.get("intersection", 0)), int(info.get("union", 0))
        _record_end(traj, info)
        if on_step is not None:
            on_step(obs, record, info)
        obs = next_obs
        done = terminated or truncated
    return traj


def run_episodes(
    agent: AgentLike,
    env: Any,
    episodes: int,
    *,
    seed: int = 0,
    indices: Optional[Sequence[int]] = None,
    progress: bool = True,
    desc: str = "episodes",
    **kwargs,
) -> list[Trajectory]:
    """Run ``episodes`` episodes; episode ``k`` uses sample ``indices[k]`` (default ``k``) and seed ``seed + k``.

    Using the index (not the env's random draw) makes every agent see the same samples.
    """
    from tqdm.auto import tqdm

    if indices is None:
        n = len(env.unwrapped.dataset)
        indices = [k % n for k in range(episodes)]
    trajs = []
    for k in tqdm(range(episodes), desc=desc, disable=not progress, leave=False):
        trajs.append(run_episode(agent, env, seed=seed + k, index=int(indices[k]), **kwargs))
    return trajs


def _predicted(agent: Any) -> Optional[float]:
    value = getattr(agent, "last_iou", None)
    return None if value is None else float(value)


def run_vector(
    agents: Sequence[AgentLike],
    envs: Any,
    episodes: int,
    *,
    seed: int = 0,
) -> list[Trajectory]:
    """Run one agent per sub-env of a gymnasium ``VectorEnv`` until ``episodes`` episodes finish.

    Works with sync and async vector envs (async with Text observations needs
    ``vector_kwargs={"shared_memory": False}``); uses NEXT_STEP autoreset semantics (the default):
    the step after an episode ends is a reset step and is not recorded. Agents return clicks or
    end actions (no invalid steps). In an ``action_mode="full"`` vector env ``Finish`` and
    ``NoObject`` go through the env as in :func:`run_episode`; in a click-mode one a ``Finish`` is
    recorded as a step that keeps the mask (reward 0) and the sub-env runs out its budget unrecorded,
    and ``NoObject`` raises ``ValueError`` (it has no click-mode array form).
    """
    n = envs.num_envs
    if len(agents) != n:
        raise ValueError(f"need one agent per sub-env: {n} envs, {len(agents)} agents")
    if any(callable(getattr(a, "attach_lookahead", None)) for a in agents):
        raise ValueError("planners that preview actions (attach_lookahead, e.g. tree search) run through "
                         "run_episode on a single env, not run_vector")
    obs, infos = envs.reset(seed=seed)

    def unbatch(batch: dict, i: int) -> dict:
        return {k: (unbatch(v, i) if isinstance(v, dict) else v[i]) for k, v in batch.items() if not k.startswith("_")}

    current: list[Optional[Trajectory]] = [None] * n
    finished: list[Trajectory] = []
    resetting = [False] * n
    for i in range(n):
        info_i = unbatch(infos, i)
        obs_i = unbatch(obs, i)
        view = info_i if getattr(agents[i], "needs_gt", False) else strip_gt(info_i)
        agents[i].reset(obs_i, view)
        current[i] = _new_trajectory(info_i, obs_i)
    full = tuple(getattr(envs, "single_action_space", envs.action_space).shape)[-1:] == (4,)
    draining = [False] * n  # the agent finished in a click-mode env: recorded, the sub-env runs out
    last = [np.zeros(4 if full else 3, np.float32) for _ in range(n)]
    while len(finished) < episodes:
        actions = []
        predicted: list[Optional[float]] = [None] * n
        for i in range(n):
            if resetting[i] or draining[i]:
                actions.append(last[i])
                continue
            info_i, obs_i = unbatch(infos, i), unbatch(obs, i)
            view = info_i if getattr(agents[i], "needs_gt", False) else strip_gt(info_i)
            a = agents[i].act(obs_i, view)
            predicted[i] = _predicted(agents[i])
            if a is None or a is INVALID:
                raise ValueError("run_vector needs click actions; use run_episodes for agents with invalid steps")
            parsed = parse_action(a)
            end = end_action_name(parsed)
            if end is not None and not full:
                if end == "no_object":
                    raise ValueError("NoObject needs a vector env made with action_mode='full'")
                traj = current[i]  # Finish changes nothing: record it as run_episode does, then drain
                assert traj is not None
                traj.steps.append(StepRecord(action_to_array(parsed).astype(float).tolist(), traj.final_iou, 0.0, False,
                                             predicted_iou=_predicted(agents[i]), intersection=traj.intersection,
                                             union=traj.union))
                traj.end_action, traj.stopped = "finish", True
                finished.append(traj)
                draining[i] = True
                actions.append(last[i])
                continue
            last[i] = action_to_space(parsed, "full" if full else "click")
            actions.append(last[i])
        obs, rewards, terms, truncs, infos = envs.step(np.stack(actions).astype(np.float32))
        for i in range(n):
            info_i = unbatch(infos, i)
            if draining[i]:
                if terms[i] or truncs[i]:
                    draining[i], resetting[i] = False, True
                continue
            if resetting[i]:
                resetting[i] = False
                obs_i = unbatch(obs, i)
                view = info_i if getattr(agents[i], "needs_gt", False) else strip_gt(info_i)
                agents[i].reset(obs_i, view)
                current[i] = _new_trajectory(info_i, obs_i)
                continue
            traj = current[i]
            assert traj is not None
            record = action_to_array(parse_action(actions[i])).astype(float).tolist()
            traj.steps.append(StepRecord(record, float(info_i["iou"]), float(rewards[i]), bool(info_i["invalid"]),
                                         predicted_iou=predicted[i], intersection=int(info_i.get("intersection", 0)),
                                         union=int(info_i.get("union", 0))))
            traj.intersection, traj.union = int(info_i.get("intersection", 0)), int(info_i.get("union", 0))
            _record_end(traj, info_i)
            if terms[i] or truncs[i]:
                finished.append(traj)
                resetting[i] = True
    return finished[:episodes]


SCORE_RULES = ("final", "best_predicted", "best_so_far")
STOP_AT_BEST_TOLERANCE = 0.02  # a Finish "at the best" is within this IoU of the episode's best mask


def _is_end_record(step: StepRecord) -> bool:
    return step.action is not None and int(step.action[0]) in (KIND_FINISH, KIND_NO_OBJECT)


from .summary import summarize  # noqa: E402  (re-exported: it lives in segenv/summary.py)
