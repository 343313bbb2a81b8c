"""Several agents on one env, side by side in one run: a markdown table, JSON and one plot.

    python benchmarks/compare.py --agents oracle random scripted mllm --env SegAgent-Shapes-v0 \
        --episodes 100 --max-clicks 5 --out results/compare-shapes

Each agent goes through :func:`agents.evaluate.evaluate` as ``benchmarks/run.py`` does (same
samples, same seeds); extra flags after ``--`` are ``run.py`` flags passed to every run (e.g.
``-- --segmenter sam:/ckpt/sam_vit_b.pth``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cliargs import arg, parse_dataclass  # noqa: E402
from agents.evaluate import evaluate, parse_args  # noqa: E402


@dataclass(kw_only=True)
class CompareArgs:
    """Several agents on one env, side by side; flags after `--` go to every run (run.py flags)."""

    agents: list[str] = arg(["oracle", "random", "scripted"], "registered agent names")
    env: str = arg("SegAgent-Shapes-v0", "a registered env id")
    episodes: int = arg(100, "episodes per agent")
    max_clicks: int = arg(5, "clicks per episode")
    seed: int = arg(0, "episode k resets with seed + k")
    out: str = arg("results/compare", "output folder: <agent>.json, table.md, summary.json, miou_per_click.png")


def table(rows: list[dict]) -> str:
    k = len(rows[0]["miou_per_click"])
    head = "| agent | " + " | ".join(f"mIoU@{i + 1}" for i in range(k)) + " | cIoU | first-click hit | invalid | s/step |"
    sep = "|" + "---|" * (k + 5)
    lines = [head, sep]
    for r in rows:
        curve = " | ".join(f"{v:.3f}" for v in r["miou_per_click"])
        lines.append(
            f"| {r['agent']} | {curve} | {r['ciou']:.3f} | {r['first_click_hit_rate']:.2f} | "
            f"{r['invalid_step_rate']:.3f} | {r['seconds_per_click']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = parse_dataclass(CompareArgs, argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for agent in args.agents:
        run_args = parse_args(
            ["--agent", agent, "--env", args.env, "--episodes", str(args.episodes), "--max-clicks", str(args.max_clicks),
             "--seed", str(args.seed), "--out", str(out / f"{agent}.json"), *extra]
        )
        rows.append(evaluate(run_args))
    md = table(rows)
    print(f"\n{args.env}, {args.episodes} episodes, {args.max_clicks} clicks\n{md}")
    (out / "table.md").write_text(md + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    _plot(rows, out / "miou_per_click.png", args.env)
    return rows


def _plot(rows: list[dict], path: Path, env: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for r in rows:
        ks = range(1, len(r["miou_per_click"]) + 1)
        ax.plot(ks, r["miou_per_click"], "o-", label=r["agent"])
    ax.set_xlabel("click")
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(env, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
