"""Shared fixtures: one torch thread, real-layout datasets written to a temp dir once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

# tests/fixtures_real.py is importable as `fixtures_real`: pyproject's pytest `pythonpath` has tests/.


@pytest.fixture(scope="session")
def real_data_root(tmp_path_factory) -> Path:
    import fixtures_real

    root = tmp_path_factory.mktemp("real_data")
    fixtures_real.write_refcoco(root)
    fixtures_real.write_hres(root)
    fixtures_real.write_classic(root)
    return root


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests check results, not speed: tiny models run on ONE torch thread, since on a 2-core
    machine shared with other work two OpenMP threads spin waiting for each other (measured here:
    a tiny SAM decoder call 0.14 s on one thread, 1.2 s on two; a tiny-VLM SFT step 25 ms vs 2.4 s)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
