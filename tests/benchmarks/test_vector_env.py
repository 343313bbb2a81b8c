"""benchmarks/vector_env.py --quick: every mode timed for every num_envs, JSON + PNG written."""

from __future__ import annotations

import json

from benchmarks.vector_env import main


def test_quick_run_writes_all_modes_and_the_profile(tmp_path):
    out = tmp_path / "v.json"
    main(["--quick", "--num-envs", "1,2", "--max-clicks", "2", "--out", str(out)])
    saved = json.loads(out.read_text())
    cells = {(r["mode"], r["num_envs"]) for r in saved["results"]}
    assert cells == {(m, n) for m in ("sync", "async", "batched") for n in (1, 2)}
    assert all(r["env_steps_per_s"] > 0 for r in saved["results"])
    assert saved["batched_2_over_one_env"] > 0 and out.with_suffix(".png").stat().st_size > 0
    parts = saved["profile"][-1]["ms_per_env_step"]
    assert parts["decoder (predict_batch)"] > 0 and parts["total"] >= parts["decoder (predict_batch)"]
