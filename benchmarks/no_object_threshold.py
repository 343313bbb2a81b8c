"""Can a decision threshold on the policy's own ``No Object Found`` score reach issue #21's target?

    python benchmarks/no_object_threshold.py --quick --out results/no_object_threshold_quick.json
    python benchmarks/no_object_threshold.py --split val --items 500 --out results/no_object_threshold_val.json

Standard threshold calibration, no retraining: on the empty-start first step of the first
``--items`` items of each ``--envs`` id (val split by default), the policy's
:meth:`agents.mllm.policy.MLLMPolicy.no_object_margin`: at the first position of its greedy answer
where an action may begin (after the ``Current IOU`` line), the score of ``No Object Found``'s
first token minus the best other score (= the difference of their log-probabilities). With
``--no-object-bias b`` (:attr:`MLLMPolicyConfig.no_object_bias`) greedy decoding answers ``No
Object Found`` on this step exactly where ``margin + b > 0``, so one decode per item gives the whole
sweep. An item is a no-target item when its ground-truth mask is empty (as the rollout harness
decides ``empty_target``; ``SegAgent-ShapesNoTarget-v0`` makes 10% of them).

Reported (JSON ``--out``): per env the ROC AUC of the margin (no-target vs real), and for each
bias of ``--biases`` the no-target accuracy and the false no-object rate on real targets; then
``chosen_bias``: the LARGEST bias (the most ``No Object Found`` answers; rounded down to 0.1) whose
false no-object rate is <= ``--max-false-no-object`` on the real targets of EVERY env (thin objects
are the hard case), with the no-target accuracy it gives and whether ``--target-accuracy`` is
reached. Later steps of an episode are not covered here, and they matter: the bias acts at every
step, and after a click the model's ``No Object Found`` margin is far higher than on the empty
start (on ShapesNoTarget val the first-step choice 11.2 gave a false no-object rate of 0.77 over
whole episodes, docs/benchmarks.md). So take this as the first-step ROC and an upper bound on the
bias; choose the bias with ``benchmarks/run.py --split val --no-object-bias B`` over whole episodes. ``iou100_margin`` (only for tokenizers with a ``Current IOU: 100`` token, the tiny
model's) is a diagnostic: the first answer token's score for ``Current IOU: 100`` (the right IoU of
an empty mask on an empty target) minus the best other score.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

if __package__ in (None, ""):  # `python benchmarks/no_object_threshold.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from agents.cliargs import arg, parse_dataclass  # noqa: E402

QUICK_ITEMS = 16
DEFAULT_BIASES = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 16.0)


@dataclass(kw_only=True)
class ThresholdArgs:
    """Calibrate a No Object Found decision threshold (logit bias) on a split (issue #21)."""

    envs: list[str] = arg(["SegAgent-ShapesNoTarget-v0", "SegAgent-ThinShapes-v0"],
                          "env ids: the chosen bias must keep the false no-object rate on EVERY one's real targets")
    split: str = arg("val", "dataset split (choose on val, report on test)")
    items: int = arg(500, "the first N items of each env's split; 0 = all")
    model: Optional[str] = arg(None, "a local checkpoint folder (default: the shipped tiny model)")
    image_size: Optional[int] = arg(None, "observation size S (default: the env's)")
    biases: tuple[float, ...] = arg(DEFAULT_BIASES, "the biases of the sweep table")
    max_false_no_object: float = arg(0.05, "the largest false no-object rate allowed on real targets")
    target_accuracy: float = arg(0.9, "the no-target accuracy issue #21 asks for")
    device: str = arg("auto", "auto, cpu, cuda, ...")
    quick: bool = arg(False, f"a smoke run: {QUICK_ITEMS} items per env")
    progress: bool = arg(True, "no progress bar")
    out: str = arg("results/no_object_threshold.json", "summary JSON path")

    def __post_init__(self) -> None:
        if self.items < 0:
            raise ValueError(f"--items must be >= 0, got {self.items}")
        if not 0.0 <= self.max_false_no_object <= 1.0:
            raise ValueError(f"--max-false-no-object is a rate in [0, 1], got {self.max_false_no_object}")
        if not self.envs:
            raise ValueError("--envs needs at least one env id")


def roc_auc(positive: Sequence[bool], score: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg), ties count half); NaN without
    both classes. Here: how well the score ranks no-target items above real targets."""
    y, s = np.asarray(positive, bool), np.asarray(score, float)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def rates(margins: np.ndarray, empty: np.ndarray, bias: float) -> dict:
    """No-target accuracy and false no-object rate when greedy decoding uses ``bias``
    (``No Object Found`` iff ``margin + bias > 0``; a NaN margin never is)."""
    said = np.nan_to_num(margins, nan=-np.inf) + bias > 0
    return {"bias": float(bias),
            "no_target_accuracy": float(said[empty].mean()) if empty.any() else float("nan"),
            "false_no_object_rate": float(said[~empty].mean()) if (~empty).any() else float("nan")}


def largest_bias(real_margins: np.ndarray, max_rate: float) -> float:
    """The largest bias whose false no-object rate on these real-target margins is <= ``max_rate``:
    at most ``floor(max_rate * n)`` margins may satisfy ``margin + bias > 0``."""
    m = np.sort(np.nan_to_num(real_margins, nan=-np.inf))[::-1]
    allowed = int(math.floor(max_rate * len(m) + 1e-9))
    return float("inf") if allowed >= len(m) else float(-m[allowed])


def score_items(env_id: str, args: ThresholdArgs, policy: Any, bar: Any = None) -> list[dict]:
    """One row per item: its margin, whether its target is empty, the IoU-100 diagnostic."""
    import gymnasium as gym
    import torch

    import segenv  # noqa: F401  (registers the env ids)

    kwargs: dict[str, Any] = {"split": args.split, "initial_state": "empty"}
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    env = gym.make(env_id, disable_env_checker=True, **kwargs)
    n = len(env.unwrapped.dataset)
    n = min(n, QUICK_ITEMS if args.quick else (args.items or n))
    iou100 = policy.tokenizer.convert_tokens_to_ids("Current IOU: 100\n")
    has_iou100 = isinstance(iou100, int) and iou100 != getattr(policy.tokenizer, "unk_token_id", None)
    rows = []
    try:
        for k in range(n):
            obs, info = env.reset(seed=k, options={"index": k})
            row = {"env": env_id, "index": k, "sample_id": info.get("sample_id"),
                   "empty_target": bool(not np.asarray(info["gt_mask"]).any()),
                   "margin": policy.no_object_margin(obs)}
            if has_iou100:
                with torch.inference_mode():
                    scores = policy.model(**policy.build_inputs(obs)).logits[0, -1].float()
                others = scores.clone()
                others[iou100] = -float("inf")
                row["iou100_margin"] = float(scores[iou100] - others.max())
            rows.append(row)
            if bar is not None:
                bar.update(1)
    finally:
        env.close()
    return rows


def analyse(rows: list[dict], args: ThresholdArgs) -> dict:
    """Per-env AUC and sweep; the val-chosen bias over all envs (see the module docstring)."""
    per_env: dict[str, dict] = {}
    bounds = []
    for env_id in args.envs:
        r = [x for x in rows if x["env"] == env_id]
        margins = np.array([x["margin"] for x in r], float)
        empty = np.array([x["empty_target"] for x in r], bool)
        info: dict[str, Any] = {"items": len(r), "no_target_items": int(empty.sum()), "nan_margins": int(np.isnan(margins).sum()),
                                "auc": roc_auc(empty, np.nan_to_num(margins, nan=-np.inf)),
                                "sweep": [rates(margins, empty, b) for b in args.biases]}
        if r and "iou100_margin" in r[0]:
            info["auc_iou100_margin"] = roc_auc(empty, [x["iou100_margin"] for x in r])
        if (~empty).any():
            info["largest_bias"] = largest_bias(margins[~empty], args.max_false_no_object)
            bounds.append(info["largest_bias"])
        per_env[env_id] = info
    chosen = math.floor(min(bounds) * 10) / 10 if bounds and math.isfinite(min(bounds)) else None
    result: dict[str, Any] = {"args": asdict(args), "envs": per_env, "chosen_bias": chosen}
    if chosen is not None:
        at = {}
        for env_id in args.envs:
            r = [x for x in rows if x["env"] == env_id]
            at[env_id] = rates(np.array([x["margin"] for x in r], float), np.array([x["empty_target"] for x in r], bool), chosen)
        result["at_chosen_bias"] = at
        accs = [v["no_target_accuracy"] for v in at.values() if not math.isnan(v["no_target_accuracy"])]
        result["target_reached"] = bool(accs) and min(accs) >= args.target_accuracy
    return result


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def format_summary(result: dict) -> str:
    lines = []
    for env_id, info in result["envs"].items():
        lines.append(f"{env_id}: {info['items']} items, {info['no_target_items']} without a target, AUC {info['auc']:.3f}"
                     + (f" (IoU-100 diagnostic AUC {info['auc_iou100_margin']:.3f})" if "auc_iou100_margin" in info else "")
                     + (f", largest bias at the false no-object cap {info['largest_bias']:.2f}" if "largest_bias" in info else ""))
        lines.append("  bias  no-target acc.  false no-object")
        for s in info["sweep"]:
            lines.append(f"  {s['bias']:5.1f}  {s['no_target_accuracy']:14.3f}  {s['false_no_object_rate']:15.3f}")
    lines.append(f"chosen bias: {result['chosen_bias']}; at it: {json.dumps(result.get('at_chosen_bias'))}; "
                 f"target reached: {result.get('target_reached')}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, policy: Any = None) -> dict:
    """Parse the flags, score the items, write ``--out``, print the summary; return the result."""
    from tqdm.auto import tqdm

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_dataclass(ThresholdArgs, argv, prog="no_object_threshold.py")
    if policy is None:
        from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
        from agents.registry import DEFAULT_TINY_CHECKPOINT

        policy = MLLMPolicy(MLLMPolicyConfig(model_path=str(args.model or DEFAULT_TINY_CHECKPOINT), device=args.device))
    rows: list[dict] = []
    with tqdm(desc="no-object margins", disable=not args.progress) as bar:
        for env_id in args.envs:
            rows += score_items(env_id, args, policy, bar)
    result = analyse(rows, args)
    result["rows"] = rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(result), indent=1, allow_nan=False))
    print(format_summary(result))
    return result


if __name__ == "__main__":
    main()
