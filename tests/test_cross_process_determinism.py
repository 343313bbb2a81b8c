"""Same seed, two separate processes: bit-identical trajectories (issue #17 item 6).

Each process runs the oracle (random tie-break, so its seeding is exercised) and the shipped tiny
MLLM in a single env, and the oracle through ``make_vec`` in sync and async mode, then prints a
SHA-256 of every action and IoU. The two processes get different ``PYTHONHASHSEED`` values, so
anything seeded from Python's per-process ``hash()`` would show up as a difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import hashlib, json
import gymnasium as gym
import numpy as np
import torch
torch.set_num_threads(1)
import segenv
from agents import OracleAgent
from agents.registry import make_agent
from segenv.rollout import run_episodes, run_vector

def digest(trajs):
    h = hashlib.sha256()
    for t in trajs:
        h.update(json.dumps([t.sample_id, t.initial_iou, [(s.action, s.iou, s.reward) for s in t.steps]]).encode())
    return h.hexdigest()

out = {}
for env_id in ("SegAgent-Shapes-v0", "SegAgent-ThinShapes-v0"):
    env = gym.make(env_id, image_size=64, max_clicks=3)
    out[env_id + "/oracle"] = digest(run_episodes(OracleAgent(tie_break="random", seed=3), env, 3, seed=5, progress=False))
env = gym.make("SegAgent-Shapes-v0", max_clicks=3)
out["mllm"] = digest(run_episodes(make_agent("mllm", seed=0), env, 2, seed=5, progress=False))
for mode in ("sync", "async"):
    envs = gym.make_vec("SegAgent-Shapes-v0", num_envs=2, vectorization_mode=mode, image_size=64, max_clicks=3,
                        **({"vector_kwargs": {"shared_memory": False}} if mode == "async" else {}))
    out["vec/" + mode] = digest(run_vector([OracleAgent(tie_break="random", seed=3) for _ in range(2)], envs, 4, seed=5))
    envs.close()
print(json.dumps(out))
'''


def run_once(hash_seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_processes_give_identical_trajectories():
    first, second = run_once("1"), run_once("12345")
    assert set(first) == {"SegAgent-Shapes-v0/oracle", "SegAgent-ThinShapes-v0/oracle", "mllm", "vec/sync", "vec/async"}
    assert first == second
