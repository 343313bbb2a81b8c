"""The benchmark numbers of a set of episodes: :func:`summarize` (definitions: docs/conventions.md#metrics).

The episodes are :class:`segenv.rollout.Trajectory` records from the rollout harness; the metric
maths is :mod:`segenv.metrics` (pure functions). ``segenv.rollout.summarize`` is this function.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .rollout import SCORE_RULES, STOP_AT_BEST_TOLERANCE, Trajectory, _is_end_record

__all__ = ["summarize"]


def summarize(
    trajectories: Sequence[Trajectory], max_clicks: int, noc_max_clicks: Optional[int] = None, score: str = "final"
) -> dict:
    """The benchmark numbers of a set of episodes (definitions: docs/conventions.md#metrics).

    ``miou``/``ciou`` use each episode's mask chosen by the scoring rule ``score``
    (:meth:`Trajectory.scored`: ``"final"``, the default, ``"best_predicted"`` as SegAgent's
    ``eval_result_iou.py``, or the ground-truth upper bound ``"best_so_far"``), named in
    ``score_rule``; ``miou_by_rule`` / ``ciou_by_rule`` give every rule side by side
    (``best_predicted`` only when some step states an IoU; ``predicted_iou_steps`` counts them); ``miou_per_click[k]`` is the mean IoU after
    step ``k+1`` with early-stopped episodes carrying their last IoU forward (an episode with no
    step carries its initial IoU); ``best_iou_per_click`` the same for the best IoU so far. NoC
    counts to ``noc_max_clicks`` (default ``max_clicks``; RITM uses 20): an episode that never
    reaches the threshold counts the maximum. A final ``Finish`` step repeats the last IoU, so it
    changes none of these.

    ``steps``, ``invalid_step_rate``, ``first_click_hit_rate`` and the timings count only steps
    that used a click (not ``Finish`` / ``NoObject``, which call no segmenter).
    ``seconds_per_click`` is the mean wall time of such a step (agent + env + segmenter);
    ``env_overhead_fraction`` is the env's own time over env + segmenter time.

    Stopping (SegAgent's ``Finish``, gRefCOCO-style no-target items): ``clicks_used`` is the mean
    number of steps that used a click per episode; ``finish_rate`` the share of episodes the agent
    ended with ``Finish``; ``stop_at_best_rate`` among those, the share whose final IoU is within
    ``STOP_AT_BEST_TOLERANCE`` (0.02) of the best IoU the episode reached (initial mask included;
    NaN when no episode finished); ``no_target_items`` the number of empty-target items;
    ``no_target_accuracy`` the share of them answered ``NoObject``; ``false_no_object_rate`` the
    share of real targets answered ``NoObject`` (NaN when there are none of that kind).
    """
    from . import metrics as M

    if score not in SCORE_RULES:
        raise ValueError(f"unknown score rule {score!r}; use one of {SCORE_RULES}")
    noc_max = noc_max_clicks or max_clicks
    n_predicted = sum(s.predicted_iou is not None for t in trajectories for s in t.steps)
    rules = [r for r in SCORE_RULES if r != "best_predicted" or n_predicted]
    if score not in rules:
        rules.append(score)
    scored = {r: [t.scored(r) for t in trajectories] for r in rules}
    miou_by = {r: float(np.mean([m[0] for m in v])) if v else float("nan") for r, v in scored.items()}
    ciou_by = {r: M.ciou([m[1] for m in v], [m[2] for m in v]) for r, v in scored.items()}
    curves = [t.ious if t.steps else [t.initial_iou] for t in trajectories]
    best = [list(np.maximum.accumulate(c)) for c in curves]
    clicks = [[s for s in t.steps if not _is_end_record(s)] for t in trajectories]
    steps = [s for c in clicks for s in c]
    seg = sum(s.segmenter_seconds for s in steps)
    env_own = sum(s.env_seconds for s in steps)
    agent = sum(s.agent_seconds for s in steps)
    n_steps = max(1, len(steps))
    firsts = [c[0].iou for c in clicks if c]
    finished = [t for t in trajectories if t.end_action == "finish"]
    empty = [t for t in trajectories if t.empty_target]
    real = [t for t in trajectories if not t.empty_target]

    def share(items: Sequence[Trajectory], end: str) -> float:
        return float(np.mean([t.end_action == end for t in items])) if items else float("nan")

    return {
        "episodes": len(trajectories),
        "steps": len(steps),
        "score_rule": score,
        "miou": miou_by[score],
        "ciou": ciou_by[score],
        "miou_by_rule": miou_by,
        "ciou_by_rule": ciou_by,
        "predicted_iou_steps": n_predicted,
        "miou_per_click": M.miou_per_click(curves, max_clicks).round(6).tolist(),
        "best_iou_per_click": M.miou_per_click(best, max_clicks).round(6).tolist(),
        "noc85": M.mean_noc(curves, 0.85, noc_max),
        "noc90": M.mean_noc(curves, 0.90, noc_max),
        "nof90": M.nof(curves, 0.90, noc_max),
        "noc_max_clicks": noc_max,
        "first_click_hit_rate": float(np.mean([v > 0.5 for v in firsts])) if firsts else float("nan"),
        "clicks_used": float(np.mean([len(c) for c in clicks])) if trajectories else float("nan"),
        "finish_rate": share(trajectories, "finish"),
        "stop_at_best_rate": M.stop_at_best_rate([[t.initial_iou, *t.ious] for t in finished], STOP_AT_BEST_TOLERANCE),
        "no_target_items": len(empty),
        "no_target_accuracy": share(empty, "no_object"),
        "false_no_object_rate": share(real, "no_object"),
        "invalid_step_rate": float(np.mean([s.invalid for s in steps])) if steps else 0.0,
        "seconds_per_click": (seg + env_own + agent) / n_steps,
        "agent_seconds_per_click": agent / n_steps,
        "segmenter_seconds_per_click": seg / n_steps,
        "env_seconds_per_click": env_own / n_steps,
        "env_overhead_fraction": env_own / (seg + env_own) if seg + env_own > 0 else 0.0,
    }
