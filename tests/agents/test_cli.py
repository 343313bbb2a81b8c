"""The CLI: parsers generated from one dataclass per command; arrows point down only."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path
from typing import Literal, Optional

import pytest

from agents.cli import SFTCommand, TracesCommand, build_parser, main
from agents.cliargs import arg, parse_dataclass, required
from agents.evaluate import EvalArgs

ROOT = Path(__file__).resolve().parents[2]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv + ["--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, cls", [(["traces"], TracesCommand), (["train", "sft"], SFTCommand), (["bench"], EvalArgs)]
)
def test_help_states_each_default_once(argv, cls, capsys):
    raw = _help(argv, capsys)
    assert "(default: None)" not in raw
    entries = {}  # flag -> its help entry, wrapped lines joined
    for chunk in re.split(r"\n(?=  -)", raw.split("options:", 1)[1]):
        words = chunk.split()
        if words:
            entries[words[0].rstrip(",")] = " ".join(words)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, bool) or default is None:
            continue
        entry = entries["--" + f.name.replace("_", "-")]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        assert entry.count("default") == 1 and f"(default: {shown})" in entry, entry


def test_traces_flags_parse_into_the_library_config():
    args = build_parser().parse_args(
        ["traces", "--out", "o", "--episodes", "4", "--initial-mix", "0.5,0.25,0.25", "--image-size", "64",
         "--env-kwargs", '{"dataset_kwargs": {"image_size": 96}}', "--no-store-images", "--tie-break", "random"]
    )
    cmd = TracesCommand(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TracesCommand)})
    config = cmd.to_config()
    assert config.out == "o" and config.episodes == 4 and config.initial_mix == (0.5, 0.25, 0.25)
    assert config.env_kwargs == {"dataset_kwargs": {"image_size": 96}, "image_size": 64}
    assert config.store_images is False and config.merge is True and config.tie_break == "random"


def test_cli_defaults_are_the_library_defaults():
    """A CLI default that differs from the library config's would be a second source of truth."""
    from agents.training.sft import SFTRunConfig
    from agents.training.traces import TraceConfig

    traces = TracesCommand(out="o").to_config()
    assert {f.name: getattr(traces, f.name) for f in dataclasses.fields(TraceConfig)} == {
        f.name: getattr(TraceConfig(out="o"), f.name) for f in dataclasses.fields(TraceConfig)
    }
    sft = SFTCommand(model="m", data="d", out="o").to_config()
    library = SFTRunConfig(model_path="m", data="d", output_dir="o")
    for name in ("max_steps", "num_train_epochs", "learning_rate", "lr_scheduler_type", "warmup_steps",
                 "per_device_train_batch_size", "gradient_accumulation_steps", "action_format", "prompt_style",
                 "overlay_color", "max_samples", "freeze_vision", "loss_from", "logging_steps", "seed", "iou_line"):
        assert getattr(sft, name) == getattr(library, name), name


@pytest.mark.parametrize("flags, expected", [([], None), (["--iou-line"], True), (["--no-iou-line"], False)])
def test_sft_iou_line_is_three_way(flags, expected):
    args = build_parser().parse_args(["train", "sft", "--model", "m", "--data", "d", "--out", "o", *flags])
    cmd = SFTCommand(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SFTCommand)})
    assert cmd.iou_line is expected and cmd.to_config().iou_line is expected


def test_bad_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--max-clicks", "0"])
    assert exc.value.code == 2 and "--max-clicks >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["traces"])  # --out is required
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["traces", "--out", "o", "--env-kwargs", "[1]"])
    assert "JSON object" in capsys.readouterr().err


def test_generated_parser_types():
    @dataclasses.dataclass(kw_only=True)
    class Args:
        """Demo."""

        out: str = required("where")
        k: int = arg(3, "count")
        mode: Literal["a", "b"] = arg("a", "mode")
        names: list[str] = arg(["x"], "names")
        ratio: Optional[float] = arg(None, "ratio")
        fast: bool = arg(False, "go fast")
        progress: bool = arg(True, "no bar")
        line: Optional[bool] = arg(None, "on, off or unsaid")

    a = parse_dataclass(Args, ["--out", "p", "--k", "5", "--mode", "b", "--names", "u", "v", "--ratio", "0.5",
                               "--fast", "--no-progress", "--no-line"])
    assert a == Args(out="p", k=5, mode="b", names=["u", "v"], ratio=0.5, fast=True, progress=False, line=False)
    assert parse_dataclass(Args, ["--out", "p"]) == Args(out="p")
    assert Args(out="p").names is not Args(out="q").names  # list defaults are not shared
    with pytest.raises(SystemExit):
        parse_dataclass(Args, ["--out", "p", "--mode", "c"])


def test_segagent_bench_equals_benchmarks_run(tmp_path):
    from benchmarks.run import main as run_main

    common = ["--agent", "oracle", "--episodes", "2", "--max-clicks", "2", "--image-size", "64", "--no-progress"]
    assert main(["bench", *common, "--out", str(tmp_path / "cli.json")]) == 0
    script = run_main([*common, "--out", str(tmp_path / "script.json")])
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert cli["miou_per_click"] == script["miou_per_click"] and cli["episodes"] == 2
    assert (tmp_path / "cli.png").stat().st_size > 0 and (tmp_path / "cli.episodes.jsonl").exists()


def _imported_roots(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


def test_arrows_point_down_only():
    """benchmarks -> agents -> segenv: no module imports a higher floor."""
    up = {"segenv": {"agents", "benchmarks"}, "agents": {"benchmarks"}}
    wrong = sorted((f, m) for pkg, higher in up.items() for f, m in _imported_roots(pkg) if m in higher)
    assert not wrong, wrong
