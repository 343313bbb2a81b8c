"""Is agent B better than agent A on the same episodes? A paired bootstrap of the final-IoU difference.

    python benchmarks/paired_bootstrap.py --a results/sft.json --b results/grpo.json

``--a`` / ``--b`` are ``benchmarks/run.py`` summaries; their ``OUT.episodes.jsonl`` files hold
every episode. Episodes are paired by episode number, and both runs must have run the same sample
in each (same env, split, seed and initial state: refused otherwise). Why paired: the items differ
far more from each other than two policies differ on one item, so resampling the per-item
*difference* gives a much tighter interval than comparing two independent means. The interval is
the percentile bootstrap (``resamples`` draws of the items with replacement, seeded). Prints one
line and, with ``--out``, writes the numbers as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cliargs import arg, parse_dataclass  # noqa: E402


@dataclass(kw_only=True)
class BootstrapArgs:
    """A paired bootstrap CI of mean final IoU (B - A) over the episodes both runs share."""

    a: str = arg("", "summary JSON of run A (benchmarks/run.py --out)")
    b: str = arg("", "summary JSON of run B, same episodes")
    resamples: int = arg(10000, "bootstrap draws")
    level: float = arg(0.95, "confidence level")
    seed: int = arg(0, "seed of the draws")
    out: Optional[str] = arg(None, "write the result as JSON here")


def final_ious(summary_path: "str | Path") -> dict[int, tuple[int, float]]:
    """``{episode: (sample_index, final IoU)}`` from a run's ``OUT.episodes.jsonl`` (skipped episodes left out)."""
    path = Path(summary_path).with_suffix(".episodes.jsonl")
    out: dict[int, tuple[int, float]] = {}
    for k, line in enumerate(path.read_text().splitlines()):
        d = json.loads(line)
        if "skipped" in d:
            continue
        steps = d["steps"]
        out[int(d.get("episode", k))] = (int(d["sample_index"]), float(steps[-1]["iou"] if steps else d["initial_iou"]))
    return out


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    """``int64[resamples, n]``: item indices drawn with replacement, seeded (one row per resample)."""
    if n == 0:
        raise ValueError("no paired episodes")
    return np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))


def ratio_interval(num: Sequence[float], den: Sequence[float], resamples: int = 10000, level: float = 0.95,
                   seed: int = 0) -> "tuple[float, float] | None":
    """Percentile-bootstrap interval of ``mean(num) / mean(den)``, the same items drawn for both.

    Why paired: ``num[i]`` and ``den[i]`` come from the same item (an agent's and the oracle's gain
    on one episode), so drawing them together keeps the per-item correlation that makes the ratio
    far tighter than two independent means would. None where some draw has ``mean(den) <= 0``
    (the ratio is undefined there)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    if num.shape != den.shape:
        raise ValueError(f"num and den must pair item by item, got shapes {num.shape} and {den.shape}")
    idx = _draws(num.size, resamples, seed)
    den_means = den[idx].mean(axis=1)
    if np.any(den_means <= 0):
        return None
    ratios = num[idx].mean(axis=1) / den_means
    lo, hi = np.quantile(ratios, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 10000, level: float = 0.95,
                     seed: int = 0) -> dict:
    """Mean of ``b - a`` and its percentile-bootstrap interval; ``p_le_0``: share of draws with mean <= 0."""
    d = np.asarray(b, float) - np.asarray(a, float)
    means = d[_draws(d.size, resamples, seed)].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"n": int(d.size), "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)), "diff": float(d.mean()),
            "ci_low": float(lo), "ci_high": float(hi), "level": level, "p_le_0": float(np.mean(means <= 0)),
            "b_better": int((d > 0).sum()), "b_worse": int((d < 0).sum()), "ties": int((d == 0).sum())}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_dataclass(BootstrapArgs, argv)
    ra, rb = final_ious(args.a), final_ious(args.b)
    shared = sorted(set(ra) & set(rb))
    mismatched = [k for k in shared if ra[k][0] != rb[k][0]]
    if mismatched:
        raise SystemExit(f"episodes {mismatched[:5]} ran different samples in the two runs: not paired")
    result = paired_bootstrap([ra[k][1] for k in shared], [rb[k][1] for k in shared], args.resamples, args.level, args.seed)
    result.update(a=args.a, b=args.b)
    print(f"final IoU  A {result['mean_a']:.4f}  B {result['mean_b']:.4f}  B-A {result['diff']:+.4f} "
          f"[{result['ci_low']:+.4f}, {result['ci_high']:+.4f}] ({100 * args.level:.0f}% paired bootstrap, n={result['n']}; "
          f"B better on {result['b_better']}, worse on {result['b_worse']})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
