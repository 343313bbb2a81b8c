"""The paper report's Markdown tables, its figure and the published numbers it sets beside ours.

Split from ``benchmarks/paper_report.py`` (which runs things) so that this module only formats:
every function takes the report dict that ``paper_report.main`` builds and returns text or draws.
The published numbers are the ones /work/shared/REFERENCE.md section 6 lists, with their source;
nothing here is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REFERENCE = "REFERENCE.md §6"


@dataclass(frozen=True)
class Published:
    """One published number: which system, on which env id and split, which metric, from where."""

    env: str
    split: str
    system: str
    metric: str  # "ciou" (percent), "noc85" or "noc90"
    value: float
    source: str
    protocol: str = ""


def _ciou_rows(env: str, splits: tuple[str, ...], systems: dict[str, tuple[float, ...]]) -> list[Published]:
    return [Published(env, split, system, "ciou", value, f"SegAgent paper, via {REFERENCE}")
            for system, values in systems.items() for split, value in zip(splits, values)]


_NOC_PROTOCOL = "RITM protocol: up to 20 clicks, stop at IoU 0.90"

#: What REFERENCE.md section 6 publishes, by the env id whose data it was measured on. SBD has no
#: env id here, so its numbers are left out.
PUBLISHED: tuple[Published, ...] = (
    *_ciou_rows("SegAgent-RefCOCO-v0", ("val", "testA", "testB"), {
        "SegAgent LLaVA+SAM": (79.20, 81.44, 75.72), "SegAgent Qwen+SimpleClick": (79.69, 81.35, 76.57),
        "Qwen box + SAM baseline": (71.79, 75.20, 67.29)}),
    *_ciou_rows("SegAgent-RefCOCOplus-v0", ("val", "testA", "testB"), {
        "SegAgent LLaVA+SAM": (71.53, 76.68, 65.44), "SegAgent Qwen+SimpleClick": (72.49, 75.80, 66.89),
        "Qwen box + SAM baseline": (65.39, 71.62, 59.12)}),
    *_ciou_rows("SegAgent-RefCOCOg-v0", ("val", "test"), {
        "SegAgent LLaVA+SAM": (74.80, 74.90), "SegAgent Qwen+SimpleClick": (75.11, 75.20),
        "Qwen box + SAM baseline": (66.93, 68.94)}),
    *(Published(env, "", "oracle (RITM clicker) + SimpleClick ViT-L", metric, value, f"SegAgent paper, via {REFERENCE}",
                _NOC_PROTOCOL)
      for env, n85, n90 in (("SegAgent-RefCOCO-v0", 2.80, 4.98), ("SegAgent-RefCOCOg-v0", 3.53, 6.07),
                            ("SegAgent-GrabCut-v0", 1.32, 1.40))
      for metric, value in (("noc85", n85), ("noc90", n90))),
    *(Published(env, "", system, "noc90", value, f"published interactive-segmentation results, via {REFERENCE}",
                _NOC_PROTOCOL)
      for system, values in (("SAM ViT-H", (1.88, 2.09, 5.19)), ("SimpleClick ViT-H", (1.50, 1.75, 4.78)),
                             ("FocSAM", (1.32, 1.47, 4.77)))
      for env, value in zip(("SegAgent-GrabCut-v0", "SegAgent-Berkeley-v0", "SegAgent-DAVIS-v0"), values)),
)

#: Paper Tab. 3 (RefCOCO val), as ranges over its models: set beside ours, never compared as equals.
PAPER_PRM = {"label": "SegAgent, paper Tab. 3 (paper, RefCOCO val, not comparable data)",
             "mae": "5.58-6.88", "mse": "175-194", "pearson": "0.90-0.91", "spearman": "0.87-0.90"}

#: Env ids whose data segagent generates: no paper measured them.
PROCEDURAL = ("SegAgent-Shapes-v0", "SegAgent-ThinShapes-v0", "SegAgent-ShapesNoTarget-v0")


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell; missing or NaN (e.g. a rate over no episode) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def published_for(env_id: str) -> list[Published]:
    return [p for p in PUBLISHED if p.env == env_id]


# ---------------------------------------------------------------------------------- tables
def main_table(entry: dict) -> list[str]:
    """One env's rows: mIoU per click, final mIoU, cIoU, NoC, stopping, no-target, invalid, time."""
    rows = entry["rows"]
    no_target = entry.get("no_target_env") or any((r.get("no_target_items") or 0) > 0 for r in rows)
    head = ["agent", "mIoU@1 .. @N", "final mIoU", "cIoU", "NoC@85", "NoC@90", "clicks used", "Finish rate",
            "stop at best"]
    head += ["no-target items", "no-target acc.", "false no-object"] if no_target else []
    head += ["invalid steps", "s/click", "run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["agent"], " ".join(fmt(v) for v in r["miou_per_click"]), fmt(r["miou"]), fmt(r["ciou"]),
                 fmt(r["noc85"], 2), fmt(r["noc90"], 2), fmt(r["clicks_used"], 2), fmt(r["finish_rate"], 2),
                 fmt(r["stop_at_best_rate"], 2)]
        cells += [fmt(r["no_target_items"]), fmt(r["no_target_accuracy"], 2), fmt(r["false_no_object_rate"], 3)] if no_target else []
        cells += [fmt(r["invalid_step_rate"]), fmt(r["seconds_per_click"], 4), f"{r['run']} ({r['how']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def env_heading(env_id: str, entry: dict) -> str:
    rows = entry["rows"]
    if not rows:
        return f"### {env_id}"
    r = rows[0]
    extra = f", {r['no_target_items']} without a target" if r.get("no_target_items") else ""
    return (f"### {env_id} ({r['split']} split, segmenter {r['segmenter']}, {r['episodes']} episodes{extra}, "
            f"NoC capped at {r['noc_max_clicks']} clicks)")


def prm_lines(prm: Optional[dict]) -> list[str]:
    if prm is None:
        return ["Not run (--prm-items 0)."]
    ours = (f"shipped tiny policy ({prm['env']} {prm['split']}, {prm['items']} items, {prm['n']} masks, "
            f"{prm['n_unparsable']} unreadable; {prm['how']})")
    return ["| | MAE | MSE | Pearson | Spearman |", "|---|---|---|---|---|",
            f"| {ours} | {fmt(prm['mae'], 2)} | {fmt(prm['mse'], 1)} | {fmt(prm['pearson'])} | {fmt(prm['spearman'])} |",
            f"| {PAPER_PRM['label']} | {PAPER_PRM['mae']} | {PAPER_PRM['mse']} | {PAPER_PRM['pearson']} | "
            f"{PAPER_PRM['spearman']} |"]


def published_lines(env_id: str, entry: dict) -> list[str]:
    """Ours beside what was published on the same data; a sentence where nothing can be compared."""
    if "skipped" in entry:
        return [f"**{env_id}**: skipped (no data), nothing to compare."]
    if env_id in PROCEDURAL:
        return [f"**{env_id}**: no published number (procedural data generated by segagent)."]
    published = published_for(env_id)
    if not published:
        return [f"**{env_id}**: REFERENCE.md lists no published number for this dataset."]
    lines = [f"**{env_id}**", "", "| row | split | cIoU (%) | NoC@85 | NoC@90 | source |", "|---|---|---|---|---|---|"]
    for r in entry["rows"]:
        lines.append(f"| ours: {r['agent']} ({r['episodes']} episodes, up to {r['noc_max_clicks']} clicks) | {r['split']} | "
                     f"{fmt(100 * r['ciou'], 2)} | {fmt(r['noc85'], 2)} | {fmt(r['noc90'], 2)} | this report |")
    for p in published:
        cells = {m: (fmt(p.value, 2) if p.metric == m else "") for m in ("ciou", "noc85", "noc90")}
        source = p.source + (f"; {p.protocol}" if p.protocol else "")
        lines.append(f"| {p.system} | {p.split or 'all'} | {cells['ciou']} | {cells['noc85']} | {cells['noc90']} | {source} |")
    return lines


def markdown(report: dict) -> str:
    """``report.md``: provenance, the main table per env, the PRM table, the published rows, the figure."""
    a = report["args"]
    lines = ["# SegAgent paper report", "",
             f"- command: `{report['command']}`", f"- date: {report['date']}", f"- git commit: {report['git_commit']}",
             f"- machine: {report['machine']}",
             f"- runs: {a['episodes']} episodes per env x agent (first items of the split, seed {a['seed']}), "
             f"up to {a['max_clicks']} clicks; every run's files under `runs/`", "",
             "## Main table (paper Tab. 1 style)", ""]
    for env_id, entry in report["envs"].items():
        lines += [env_heading(env_id, entry), ""]
        lines += [f"skipped: {entry['skipped']}"] if "skipped" in entry else main_table(entry)
        lines.append("")
    lines += ["## PRM filtering (paper Tab. 3 style)", "", *prm_lines(report.get("prm")), "",
              "## Published reference rows", ""]
    for env_id, entry in report["envs"].items():
        lines += [*published_lines(env_id, entry), ""]
    lines += ["## mIoU per click", "", "![mIoU per click, one panel per env](miou_per_click.png)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- figure
def plot_curves(report: dict, path: Path) -> None:
    """One panel per env that ran, one line per agent: mIoU after each click."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = {env: e["rows"] for env, e in report["envs"].items() if e.get("rows")}
    fig, axes = plt.subplots(1, max(1, len(ran)), figsize=(3.8 * max(1, len(ran)), 3.2), squeeze=False)
    if not ran:
        axes[0][0].text(0.5, 0.5, "no env ran", ha="center", va="center")
        axes[0][0].set_axis_off()
    for ax, (env_id, rows) in zip(axes[0], ran.items()):
        for i, r in enumerate(rows):  # a style per agent: equal curves (common on short runs) stay visible
            ks = range(1, len(r["miou_per_click"]) + 1)
            ax.plot(list(ks), r["miou_per_click"], ls=("-", "--", ":", "-.")[i % 4], marker="os^D"[i % 4],
                    ms=4 + 2 * (i % 3), mfc="none", label=r["agent"])
        ax.set(title=env_id.removeprefix("SegAgent-"), xlabel="click", ylim=(0, 1.03))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mIoU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
