"""Shared fixtures: real-layout datasets written to a temp dir once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/fixtures_real.py


@pytest.fixture(scope="session")
def real_data_root(tmp_path_factory) -> Path:
    import fixtures_real

    root = tmp_path_factory.mktemp("real_data")
    fixtures_real.write_refcoco(root)
    fixtures_real.write_hres(root)
    fixtures_real.write_classic(root)
    return root
