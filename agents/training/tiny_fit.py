"""How closely a policy reproduces the oracle labels of an example folder: the fit diagnostic.

    python -m agents.training.tiny_fit --model agents/mllm/checkpoints/tiny28 --data /tmp/dagger --out fit.json

Why: the refinement benchmark says *that* a policy's later clicks are weak; this says *where*. Run
on a folder of the policy's own states labelled by the oracle (``tiny_data --kind dagger``), once
on states it was trained on and once on held-out ones, it separates "cannot fit" (low on both)
from "fits but does not generalise" (high on the first only). Each example's stored overlay and
caption go through :meth:`MLLMPolicy.generate` (greedy, as the benchmarks decode) and the answer
is compared with the stored label.

Reported for all examples and for the mid-IoU ones (``mid_iou`` range, where refinement happens):
``action_agree`` (click / Finish / No Object Found as labelled), over the click labels
``answered_finish`` (the policy stopped where the oracle clicks), ``sign_agree``,
``negative_sign_agree`` (over negative labels), ``sign_and_cell`` (right sign and a click in a cell
within ``cell_tolerance`` rows and columns of the labelled one, on the folder's label grid), and ``iou_mae`` (stated IoU against the
example's true IoU, percent).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.cliargs import arg, parse_dataclass, required  # noqa: E402


@dataclass(kw_only=True)
class FitArgs:
    """Label agreement of a checkpoint on an example folder."""

    model: str = required("a local checkpoint folder (any MLLMPolicy checkpoint; clicks are put on the labels' grid)")
    data: str = required("an example folder written by agents.training.tiny_data")
    examples: int = arg(600, "examples drawn at random (seeded; 0 = all)")
    mid_iou: tuple[float, ...] = arg((0.05, 0.85), "the 'mid_iou' subset: true IoU strictly inside this range")
    cell_tolerance: int = arg(1, "sign_and_cell: the largest row or column distance counted as the labelled cell")
    seed: int = arg(0, "seed of the example draw")
    out: Optional[str] = arg(None, "write the result as JSON here")

    def __post_init__(self) -> None:
        if self.examples < 0 or self.cell_tolerance < 0:
            raise ValueError("--examples and --cell-tolerance must be >= 0")
        if len(self.mid_iou) != 2 or not 0 <= self.mid_iou[0] < self.mid_iou[1] <= 1:
            raise ValueError(f"--mid-iou must be two numbers lo,hi with 0 <= lo < hi <= 1, got {self.mid_iou}")


def answer_kind(action: Any) -> str:
    """``"click"``, ``"finish"``, ``"no_object"`` or ``"invalid"`` (the labels' vocabulary)."""
    from segenv.actions import Click, Finish, NoObject

    for cls, name in ((Click, "click"), (Finish, "finish"), (NoObject, "no_object")):
        if isinstance(action, cls):
            return name
    return "invalid"


def compare(label: dict, action: Any, stated_iou: Optional[float], grid: int, tolerance: int) -> dict:
    """One example's row: the label, what the policy answered, and whether they agree."""
    kind = answer_kind(action)
    row = {"label": label["action"], "kind": kind, "iou": float(label["iou"]), "stated_iou": stated_iou}
    if label["action"] == "click":
        sign_ok = kind == "click" and bool(action.positive) == bool(label["positive"])
        near = False
        if sign_ok:
            lr, lc = divmod(int(label["cell"]), grid)
            pr, pc = min(int(action.y * grid), grid - 1), min(int(action.x * grid), grid - 1)
            near = max(abs(pr - lr), abs(pc - lc)) <= tolerance
        row.update(positive=bool(label["positive"]), sign_ok=sign_ok, near=near)
    return row


def summarize_fit(rows: Sequence[dict]) -> dict:
    """The agreement numbers of the module docstring over ``rows`` (None where nothing to count)."""

    def mean(values: list) -> Optional[float]:
        return round(float(np.mean(values)), 4) if values else None

    clicks = [r for r in rows if r["label"] == "click"]
    negatives = [r for r in clicks if not r["positive"]]
    errors = [abs(r["stated_iou"] - r["iou"]) * 100 for r in rows if r["stated_iou"] is not None]
    return {"examples": len(rows), "click_labels": len(clicks), "negative_labels": len(negatives),
            "action_agree": mean([r["kind"] == r["label"] for r in rows]),
            "answered_finish": mean([r["kind"] == "finish" for r in clicks]),
            "sign_agree": mean([r["sign_ok"] for r in clicks]),
            "negative_sign_agree": mean([r["sign_ok"] for r in negatives]),
            "sign_and_cell": mean([r["near"] for r in clicks]),
            "iou_mae": round(float(np.mean(errors)), 2) if errors else None}


def run_fit(args: FitArgs) -> tuple[dict, list[dict]]:
    """``(result, rows)``: the summaries of the module docstring and one :func:`compare` row per
    example (in the drawn order, with its ``index`` in the folder)."""
    from datasets import load_from_disk
    from tqdm.auto import tqdm

    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from agents.training.tiny_data import example_grid

    if not Path(args.data).is_dir():
        raise SystemExit(f"--data {args.data!r} is not a folder: build one with python -m agents.training.tiny_data")
    grid = example_grid(args.data)  # the labels' grid; the policy's click is put on it, whatever its format
    policy = MLLMPolicy(MLLMPolicyConfig(model_path=args.model, device="cpu", max_new_tokens=8))
    data = load_from_disk(args.data)
    order = np.random.default_rng(args.seed).permutation(len(data))
    chosen = order[:args.examples] if args.examples else order
    rows = []
    for i in tqdm(chosen, desc="examples"):
        example = data[int(i)]
        parsed = policy.generate({"overlay": np.asarray(example["image"].convert("RGB")), "text": example["text"]})[0]
        rows.append({"index": int(i), **compare(example, parsed.action, parsed.iou, grid, args.cell_tolerance)})
    lo, hi = args.mid_iou
    result = {"args": asdict(args), "grid": grid, "all": summarize_fit(rows),
              "mid_iou": summarize_fit([r for r in rows if lo < r["iou"] < hi])}
    return result, rows


def main(argv: Optional[Sequence[str]] = None) -> dict:
    result, _ = run_fit(parse_dataclass(FitArgs, argv))
    print(json.dumps(result, indent=1))
    if result["args"]["out"]:
        out = Path(result["args"]["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
