"""Plain `pytest` from the repository root collects what `python -m pytest` collects.

`python -m pytest` puts the working directory on sys.path; the `pytest` script does not, and
before pyproject.toml configured the import mode, tests/segenv shadowed the segenv package
(`ImportError: cannot import name 'BoxPrompt' from 'segenv'`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/segenv/test_env.py", "tests/segenv/test_clicker_metrics.py"]


def _collected(cmd: list[str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([*cmd, "--collect-only", "-q", *FILES], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_plain_pytest_collects_like_python_m_pytest():
    script = Path(sys.executable).parent / "pytest"
    script = str(script) if script.exists() else shutil.which("pytest")
    if script is None:
        pytest.skip("no pytest script on PATH")
    plain = _collected([script])
    assert plain and plain == _collected([sys.executable, "-m", "pytest"])
    assert {line.split("::")[0] for line in plain} == set(FILES)
