"""The paper's report in one command: Tab. 1-style main table, Tab. 3-style PRM table, published rows.

    python benchmarks/paper_report.py                     # 100 episodes x (3 envs x oracle, mllm, tree)
    python benchmarks/paper_report.py --quick             # a smoke run: 4 episodes, 4 PRM items
    python benchmarks/paper_report.py --envs SegAgent-Shapes-v0 SegAgent-RefCOCO-v0 --data-root /data

What it runs, all through code that already exists (nothing here rolls an episode itself):

1. for every env id x agent, ONE run of the benchmark harness (:func:`agents.evaluate.evaluate`,
   what ``benchmarks/run.py`` calls), its files under ``DIR/runs/<env>/<agent>.*``. An env whose
   data is missing (:class:`segenv.DatasetNotFoundError` when the env is made) becomes a
   "skipped: <the error's first line>" line, and the report goes on;
2. the PRM filtering benchmark (:func:`benchmarks.prm_filtering.run`) on the first
   ``--prm-items`` Shapes test items, beside the paper's Tab. 3 row;
3. the published numbers REFERENCE.md lists for the real datasets that ran (:data:`PUBLISHED`).

Writes ``DIR/report.md`` (command, date, commit, machine, tables, figure), ``DIR/report.json`` (all
numbers; rewritten after every run, so a crash keeps what finished) and ``DIR/miou_per_click.png``.
A run whose summary in ``DIR/runs`` was made with the same arguments (the harness's
``RUN_IDENTITY``, recorded in ``OUT.run.json`` and in the summary's ``args``, plus the episode
count) is reused; one cut short by a crash is resumed (the harness's ``--resume``); ``--force``
reruns everything.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

if __package__ in (None, ""):  # `python benchmarks/paper_report.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.cliargs import arg, parse_dataclass  # noqa: E402
from benchmarks.report_tables import markdown, plot_curves  # noqa: E402

QUICK = {"episodes": 4, "prm_items": 4}
PRM_ENV = "SegAgent-Shapes-v0"

log = logging.getLogger("segagent.report")


@dataclass(kw_only=True)
class ReportArgs:
    """The paper report: every env x agent through the harness, the PRM table, the published rows."""

    envs: list[str] = arg(["SegAgent-Shapes-v0", "SegAgent-ThinShapes-v0", "SegAgent-ShapesNoTarget-v0"],
                          "env ids; real datasets (SegAgent-RefCOCO-v0, SegAgent-DAVIS-v0, ...) are skipped, "
                          "with the reason in the report, when their data is missing")
    agents: list[str] = arg(["oracle", "mllm", "tree"], "registered agents (agents.registry), one run per env each")
    episodes: int = arg(100, "episodes per run (the first N items of the split); 0 = the whole split")
    max_clicks: int = arg(5, "clicks per episode")
    split: Optional[str] = arg(None, "dataset split (default: each env id's: test for the procedural sets, "
                               "val for RefCOCO / DIS5K)")
    prm_items: int = arg(100, "Shapes test items of the PRM table (paper Tab. 3)")
    prm_masks_per_item: int = arg(3, "PRM table: masks per item")
    model: Optional[str] = arg(None, "mllm / tree / PRM: a local checkpoint folder (default: the shipped tiny model)")
    image_size: Optional[int] = arg(None, "observation size S (default: each env's)")
    data_root: Optional[str] = arg(None, "dataset root of the real datasets (default: $SEGAGENT_DATA)")
    seed: int = arg(0, "episode k resets with seed + k; seeds the agents and the PRM mask set")
    quick: bool = arg(False, "a smoke run: 4 episodes per run, 4 PRM items")
    force: bool = arg(False, "rerun every run, even those whose results in --out-dir match")
    out_dir: str = arg("results/report", "report.md, report.json, miou_per_click.png and runs/ go here")
    progress: bool = arg(True, "no progress bars")

    def __post_init__(self) -> None:
        if self.quick:
            for key, value in QUICK.items():
                setattr(self, key, value)
        if self.episodes < 0 or self.max_clicks < 1 or self.prm_items < 0 or self.prm_masks_per_item < 1:
            raise ValueError("--episodes and --prm-items must be >= 0, --max-clicks and --prm-masks-per-item >= 1")
        if not self.envs or not self.agents:
            raise ValueError("--envs and --agents need at least one value each")


# ---------------------------------------------------------------------------------- the harness runs
def eval_args(args: ReportArgs, env_id: str, agent: str, out_dir: Path) -> Any:
    """The harness arguments of one (env, agent) cell; its files go to ``runs/<env>/<agent>.json``."""
    from agents.evaluate import EvalArgs

    return EvalArgs(agent=agent, env=env_id, split=args.split, episodes=args.episodes, max_clicks=args.max_clicks,
                    seed=args.seed, model=args.model, image_size=args.image_size, data_root=args.data_root,
                    out=str(out_dir / "runs" / env_id / f"{agent}.json"), progress=args.progress)


@dataclass(frozen=True)
class EnvProbe:
    """What the report needs to know of an env before running agents on it."""

    items: int = 0  # items in the split
    no_target: bool = False  # its dataset makes items whose caption names an absent object
    error: Optional[str] = None  # why it cannot run: the first line of the missing-data error


def probe_env(ea: Any) -> EnvProbe:
    """Make the env once, before any agent is built, so a missing dataset costs no model load.

    Only a missing dataset (:class:`segenv.DatasetNotFoundError`) becomes a skip: any other error
    is a bug and is raised.
    """
    from agents.evaluate import make_env
    from segenv import DatasetNotFoundError

    try:
        env = make_env(ea)
    except DatasetNotFoundError as exc:
        return EnvProbe(error=str(exc).strip().splitlines()[0])
    try:
        dataset = env.unwrapped.dataset
        return EnvProbe(items=len(dataset), no_target=bool(getattr(dataset, "no_target_items", False)))
    finally:
        env.close()


def expected_episodes(requested: int, items: int) -> int:
    """The episode count the harness will run: ``requested`` capped at the split (0 = all of it)."""
    return items if requested == 0 or requested > items else requested


def run_identity(ea: Any) -> dict:
    """What decides a run's episodes: the harness's own ``RUN_IDENTITY`` fields."""
    from agents.evaluate import RUN_IDENTITY

    return {key: getattr(ea, key) for key in RUN_IDENTITY}


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def recorded_identity_matches(ea: Any) -> bool:
    """``OUT.run.json`` (written by the harness when a run starts) holds this run's identity."""
    recorded = _read_json(Path(ea.out).with_suffix(".run.json"))
    return recorded == run_identity(ea)


def finished_summary(ea: Any, episodes: int) -> Optional[dict]:
    """The summary in ``OUT`` when it is a finished run of exactly these arguments, else None.

    Checks both the identity the run started with (``OUT.run.json``) and the one the summary was
    written with (its ``args``), so a summary left by other arguments, whose rerun then crashed
    before finishing, is not taken for this one; the episode count must match too.
    """
    summary = _read_json(Path(ea.out))
    if summary is None or not recorded_identity_matches(ea):
        return None
    saved = summary.get("args", {})
    same = all(saved.get(k) == v for k, v in run_identity(ea).items())
    return summary if same and saved.get("episodes") == episodes and saved.get("noc_max_clicks") == ea.noc_max_clicks else None


def run_cell(ea: Any, episodes: int, force: bool) -> tuple[dict, str]:
    """``(summary, how)``: reused from disk, resumed after a crash, or run; ``how`` says which."""
    from dataclasses import replace

    from agents.evaluate import evaluate

    if not force:
        summary = finished_summary(ea, episodes)
        if summary is not None:
            return summary, "reused"
    out = Path(ea.out)
    resume = not force and out.with_suffix(".episodes.jsonl").exists() and recorded_identity_matches(ea)
    return evaluate(replace(ea, resume=resume)), "resumed" if resume else "ran"


def main_row(summary: dict, how: str, path: str) -> dict:
    """The numbers of one run the main table shows (Tab. 1 style), JSON-safe."""
    keys = ("episodes", "split", "segmenter", "miou_per_click", "miou", "ciou", "noc85", "noc90", "nof90",
            "noc_max_clicks", "clicks_used", "finish_rate", "stop_at_best_rate", "no_target_items",
            "no_target_accuracy", "false_no_object_rate", "invalid_step_rate", "seconds_per_click", "wall_seconds")
    row = {key: summary.get(key) for key in keys}
    row.update(agent=summary["agent"], run=path, how=how, agent_stats=summary.get("agent_stats"))
    return row


# ---------------------------------------------------------------------------------- the PRM table
def same_prm_args(saved: dict, wanted: dict) -> bool:
    """The PRM result on disk was made with these arguments; where it was written does not count
    (a report folder that was moved or copied keeps its results)."""
    return {k: v for k, v in saved.items() if k != "out"} == {k: v for k, v in wanted.items() if k != "out"}


def prm_table(args: ReportArgs, out_dir: Path) -> dict:
    """Paper Tab. 3's metrics from :mod:`benchmarks.prm_filtering`, reused from disk when its args match."""
    from benchmarks import prm_filtering as pf

    fa = pf.FilteringArgs(env=PRM_ENV, split="test", items=args.prm_items, masks_per_item=args.prm_masks_per_item,
                          model=args.model, image_size=args.image_size, seed=args.seed,
                          out=str(out_dir / "prm_filtering.json"))
    saved = _read_json(Path(fa.out))
    if not args.force and saved is not None and same_prm_args(saved.get("args") or {}, asdict(fa)):
        result, how = saved, "reused"
    else:
        result, how = pf.run(fa), "ran"
        Path(fa.out).write_text(json.dumps(pf._json_safe(result), indent=1, allow_nan=False))
        pf.plot(result, Path(fa.out).with_suffix(".png"))
    keys = ("n", "n_unparsable", "mae", "mse", "pearson", "spearman", "precision", "recall", "env", "split",
            "segmenter", "model")
    return {**{k: result.get(k) for k in keys}, "items": args.prm_items, "run": fa.out, "how": how}


# ---------------------------------------------------------------------------------- provenance
def git_commit(where: Path) -> str:
    """``git rev-parse --short HEAD`` of the checkout holding this script, or "unknown" outside git."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine_note() -> str:
    """Where the numbers were measured: timings only compare within one machine and one load."""
    try:
        import torch

        accel = f"torch {torch.__version__}, CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}"
    except ImportError:
        accel = "no torch"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores visible, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, Python {platform.python_version()}, {accel}")


def provenance(argv: Sequence[str]) -> dict:
    return {"command": "python benchmarks/paper_report.py " + shlex.join(argv),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "git_commit": git_commit(Path(__file__).resolve().parent), "machine": machine_note()}


# ---------------------------------------------------------------------------------- outputs
def write_outputs(report: dict, out_dir: Path, figure: bool) -> None:
    """``report.json`` and ``report.md`` (every call, so a crash keeps what finished); the figure when asked."""
    from benchmarks.prm_filtering import _json_safe

    (out_dir / "report.json").write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False))
    (out_dir / "report.md").write_text(markdown(report))
    if figure:
        plot_curves(report, out_dir / "miou_per_click.png")


def run_envs(args: ReportArgs, report: dict, out_dir: Path) -> None:
    """Every env x agent through the harness, filling ``report["envs"]`` and saving after each run."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(args.envs) * len(args.agents), desc="report runs", disable=not args.progress)
    for env_id in args.envs:
        entry: dict[str, Any] = {"rows": []}
        report["envs"][env_id] = entry
        probe = probe_env(eval_args(args, env_id, args.agents[0], out_dir))
        if probe.error is not None:
            log.warning("%s skipped: %s", env_id, probe.error)
            entry["skipped"] = probe.error
            bar.update(len(args.agents))
            write_outputs(report, out_dir, figure=False)
            continue
        entry["no_target_env"] = probe.no_target
        episodes = expected_episodes(args.episodes, probe.items)
        for agent in args.agents:
            ea = eval_args(args, env_id, agent, out_dir)
            summary, how = run_cell(ea, episodes, args.force)
            entry["rows"].append(main_row(summary, how, os.path.relpath(ea.out, out_dir)))
            bar.update(1)
            write_outputs(report, out_dir, figure=False)
    bar.close()


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse the flags (default ``sys.argv[1:]``), run everything, write the report; return it."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_dataclass(ReportArgs, argv, prog="paper_report.py")
    out_dir = Path(args.out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {**provenance(argv), "args": asdict(args), "envs": {}, "prm": None}
    run_envs(args, report, out_dir)
    if args.prm_items > 0:
        report["prm"] = prm_table(args, out_dir)
    write_outputs(report, out_dir, figure=True)
    print(markdown(report))
    print(f"wrote {out_dir / 'report.md'}, {out_dir / 'report.json'}, {out_dir / 'miou_per_click.png'}")
    return report


if __name__ == "__main__":
    main()
