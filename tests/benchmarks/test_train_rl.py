"""#15: benchmarks/train_rl.py trains SB3 PPO / DQN through make_sb3_env + ClickGrid, and the saved
model plays through the normal harness as ``--agent sb3``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from agents.evaluate import EvalArgs, evaluate  # noqa: E402
from agents.registry import make_agent  # noqa: E402
from benchmarks.train_rl import main as train_main  # noqa: E402
from segenv.actions import Click  # noqa: E402


@pytest.fixture(scope="module", params=["ppo", "dqn"])
def run(request, tmp_path_factory) -> tuple[str, Path, dict]:
    out = tmp_path_factory.mktemp(f"rl_{request.param}")
    summary = train_main(["--quick", "--algo", request.param, "--out", str(out), "--seed", "1"])
    return request.param, out, summary


def test_quick_run_writes_model_args_curve_and_png(run):
    algo, out, summary = run
    for name in ("model.zip", "args.json", "curve.json", "curve.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "args.json").read_text())
    assert saved["args"]["algo"] == algo and saved["args"]["quick"] is True
    assert saved["env_steps"] >= 256 and saved["train_seconds"] > 0
    assert saved["observation"]["grid"] == 8 and saved["observation"]["image_size"] == 64
    assert "red" in saved["observation"]["vocabulary"]
    rows = json.loads((out / "curve.json").read_text())
    assert len(rows) == saved["episodes"] >= 256 // 5 - 2  # 5-click episodes, two envs: nearly all finish
    for r in rows:
        assert -1.0 <= r["gain"] <= 1.0 and r["gain"] == pytest.approx(r["final_iou"] - r["initial_iou"])
        assert r["initial_iou"] == 0.0  # the empty initial mask
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert any(r["gain"] > 0 for r in rows)  # some random-ish click found its object


def test_saved_model_plays_through_the_harness(run, tmp_path):
    algo, out, _ = run
    summary = evaluate(EvalArgs(agent="sb3", model=str(out / "model.zip"), episodes=3, max_clicks=5,
                                out=str(tmp_path / "eval.json"), progress=False))
    assert summary["episodes"] == 3 and summary["invalid_step_rate"] == 0.0
    assert summary["args"]["image_size"] == 64  # the agent's env_overrides: the training pixels
    episodes = [json.loads(line) for line in (tmp_path / "eval.episodes.jsonl").read_text().splitlines()]
    assert [len(e["steps"]) for e in episodes] == [5, 5, 5]
    assert all(0.0 <= s["iou"] <= 1.0 and s["error"] is None for e in episodes for s in e["steps"])
    assert len(summary["miou_per_click"]) == 5


def test_agent_maps_the_models_index_through_the_grid_codec(run):
    import gymnasium as gym

    _, out, _ = run
    agent = make_agent("sb3", model=str(out))  # the run folder works as well as model.zip
    env = gym.make("SegAgent-Shapes-v0", image_size=128, max_clicks=2)  # another size: the agent resizes
    obs, info = env.reset(seed=0, options={"index": 0})
    seen = agent.observation(obs)
    assert seen["overlay"].shape == (64, 64, 3) and seen["overlay"].dtype == np.uint8
    assert agent.words.decode(seen["text_words"]) == obs["text"].lower().split()
    agent.reset(obs, info)
    action = agent.act(obs, info)
    index, _ = agent._policy.predict(seen, deterministic=True)
    assert isinstance(action, Click) and agent.grid.index_of(action) == int(index)


def test_clear_errors(run, tmp_path, monkeypatch):
    _, out, _ = run
    with pytest.raises(ValueError, match="needs --model"):
        make_agent("sb3")
    with pytest.raises(FileNotFoundError, match="no SB3 model"):
        make_agent("sb3", model=str(tmp_path / "nothing.zip"))
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(out / "model.zip", lone / "model.zip")
    with pytest.raises(FileNotFoundError, match="args.json"):
        make_agent("sb3", model=str(lone / "model.zip"))
    saved = json.loads((out / "args.json").read_text())
    saved["observation"]["grid"] = 4
    (lone / "args.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"does not match.*Discrete\(128\)"):
        make_agent("sb3", model=str(lone / "model.zip"))
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"segagent\[rl\]"):
        make_agent("sb3", model=str(out / "model.zip"))


def test_sampling_with_a_temperature_is_seeded_per_episode(run):
    import gymnasium as gym

    _, out, _ = run
    env = gym.make("SegAgent-Shapes-v0", image_size=64, max_clicks=5)
    obs, info = env.reset(seed=0, options={"index": 2})

    def clicks(seed: int) -> list:
        agent = make_agent("sb3", model=str(out), temperature=1.0, seed=seed)
        agent.reset(obs, info)
        return [agent.act(obs, info) for _ in range(6)]

    assert clicks(3) == clicks(3)  # same (seed, sample_index): same draws
    assert clicks(3) != clicks(4)
    greedy = make_agent("sb3", model=str(out))
    logits = greedy.logits(greedy.observation(obs))
    assert logits.shape == (128,) and np.isfinite(logits).all()
    assert greedy.grid.index_of(greedy.act(obs, info)) == int(np.argmax(logits))  # T = 0 is the argmax
    with pytest.raises(ValueError, match="temperature"):
        make_agent("sb3", model=str(out), temperature=-1.0)


def test_same_seed_same_run(run, tmp_path):
    """Seeded end to end: the envs' items, SB3's sampling and the weights repeat exactly."""
    import zipfile

    algo, out, _ = run
    if algo != "ppo":
        pytest.skip("one algorithm is enough to check the seeding (both take the same path)")
    train_main(["--quick", "--algo", algo, "--out", str(tmp_path), "--seed", "1"])

    def rows(folder: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((folder / "curve.json").read_text())]

    assert rows(tmp_path) == rows(out)
    with zipfile.ZipFile(out / "model.zip") as a, zipfile.ZipFile(tmp_path / "model.zip") as b:
        assert a.read("policy.pth") == b.read("policy.pth")
