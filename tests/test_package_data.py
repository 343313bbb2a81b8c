"""Every shipped checkpoint file is in the package data, so a non-editable install carries it.

Why: `pip install .` (not `-e`) copies only the files pyproject's package-data globs name; a new
checkpoint folder that is not listed works in the checkout and is missing after install.
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_DIRS = [ROOT / "agents" / "mllm" / "checkpoints", ROOT / "segenv" / "segmenters" / "checkpoints"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python >= 3.11")
def test_every_shipped_checkpoint_file_is_in_the_package_data():
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = [f for d in CHECKPOINT_DIRS for f in d.rglob("*") if f.is_file()]
    assert files, "no checkpoint files found: the checkout is incomplete"
    missing = []
    for f in files:
        package = f.relative_to(ROOT).parts[0]
        relative = f.relative_to(ROOT / package).as_posix()
        if not any(fnmatch.fnmatch(relative, pattern) for pattern in package_data.get(package, [])):
            missing.append(relative)
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"
