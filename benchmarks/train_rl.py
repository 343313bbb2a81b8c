"""Train a click policy with reinforcement learning (stable-baselines3 PPO or DQN) on a segenv id.

    OMP_NUM_THREADS=1 python benchmarks/train_rl.py --algo ppo --total-timesteps 60000 --max-minutes 14 --out runs/rl_ppo
    OMP_NUM_THREADS=1 python benchmarks/train_rl.py --algo dqn --learning-rate 1e-4 --batch-size 64 --gamma 0.9 \
        --exploration-fraction 0.5 --target-update-interval 500 --total-timesteps 42000 --max-minutes 9.5 --out runs/rl_dqn
    python benchmarks/run.py --agent sb3 --model runs/rl_ppo/model.zip --temperature 1 --episodes 100 --max-clicks 5

(the runs, numbers and curves of docs/rl.md).

One file in cleanrl's shape: the arguments are the dataclass :class:`Args` at the top, then the env,
the logging callback, the model, the outputs. The policy network is
:class:`agents.rl_extractor.WordFiLMGridCNN` (``--extractor nature``: SB3's stock one). The env is
the library's own: ``make_sb3_env`` (the overlay as a ``64x64x3`` uint8 image, the caption as word
ids, ``text="words"``) inside ``ClickGrid``
(``Discrete(2 G^2)``: a positive or negative click at a cell centre of a ``G x G`` grid). Rewards
are the env's, ``IoU(t+1) - IoU(t)``, so an episode's return is its IoU gain. Training uses the
``train`` split; evaluation (``--eval-episodes`` or ``benchmarks/run.py``) the held-out ``test`` split.

Writes ``OUT/model.zip`` (SB3), ``OUT/args.json`` (these arguments plus the observation transform
the ``sb3`` agent needs to rebuild: image size, grid, vocabulary), ``OUT/curve.json`` (one row per
training episode: env step, IoU gain, final IoU, wall seconds) and ``OUT/curve.png`` (rolling mean
of the IoU gain against env steps). ``--quick`` shrinks everything for tests (a few hundred steps).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

if __package__ in (None, ""):  # `python benchmarks/train_rl.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from agents.cliargs import arg, parse_dataclass  # noqa: E402

log = logging.getLogger("segagent.train_rl")


@dataclass(kw_only=True)
class Args:
    """Train a click policy with stable-baselines3 (PPO or DQN) on a segenv id; writes model, curve, PNG."""

    algo: Literal["ppo", "dqn"] = arg("ppo", "ppo (categorical policy, MultiInputPolicy) or dqn (Q-values over the grid)")
    env_id: str = arg("SegAgent-Shapes-v0", "a registered segenv id")
    split: str = arg("train", "the split the policy trains on (evaluation uses the id's held-out split)")
    segmenter: Optional[str] = arg(None, "segmenter spec (default: the id's; clicknet on Shapes)")
    grid: int = arg(8, "ClickGrid side G: Discrete(2 G^2) clicks")
    image_size: int = arg(64, "overlay side S in the observation (SB3's NatureCNN needs >= 36)")
    max_words: int = arg(12, "caption length in words (TextToWords)")
    max_clicks: int = arg(5, "clicks per episode")
    action_mode: Literal["click", "full"] = arg("click", "full adds Finish and No object as two more actions")
    extractor: Literal["film", "nature"] = arg(
        "film", "film = agents.rl_extractor.WordFiLMGridCNN (a G x G map conditioned on the words, a linear head "
        "over it); nature = SB3's default MultiInputPolicy (NatureCNN + flattened one-hot words, MLP heads)")
    total_timesteps: int = arg(40000, "env steps to train for")
    max_minutes: Optional[float] = arg(None, "stop training after this much wall time (checked every step)")
    seed: int = arg(0, "seeds SB3 (torch, the policy's sampling) and the envs (env i: seed + i)")
    n_envs: int = arg(4, "envs stepped in turn (DummyVecEnv, one process): more varied batches, not more speed")
    learning_rate: float = arg(3e-4, "Adam step size (DQN: 1e-4 is usual; this default is PPO's)")
    gamma: float = arg(0.99, "discount (the return is the IoU gain, at most max_clicks steps)")
    ent_coef: float = arg(0.01, "ppo: entropy bonus (keeps exploring the 2 G^2 cells)")
    n_steps: int = arg(128, "ppo: steps per env between updates (n_envs * n_steps per rollout)")
    batch_size: int = arg(128, "ppo minibatch / dqn batch")
    n_epochs: int = arg(4, "ppo: passes over each rollout")
    buffer_size: int = arg(20000, "dqn: replay buffer (each transition holds two SxSx3 overlays)")
    learning_starts: int = arg(1000, "dqn: random steps before learning")
    exploration_fraction: float = arg(0.3, "dqn: share of training over which epsilon falls to its final value")
    target_update_interval: int = arg(1000, "dqn: env steps between target-network copies")
    log_every: int = arg(200, "log a progress line every N finished episodes")
    rolling: int = arg(200, "episodes in the rolling mean of the curve")
    eval_episodes: int = arg(0, "after training, evaluate on N held-out episodes through agents.evaluate "
                                "(the same run as benchmarks/run.py --agent sb3); 0 = skip")
    out: str = arg("runs/rl", "output folder")
    quick: bool = arg(False, "a smoke run for tests: 256 steps, small rollouts and buffer, eval on 2 episodes")

    def __post_init__(self) -> None:
        if self.grid < 1 or self.image_size < 36 or self.max_clicks < 1 or self.total_timesteps < 1 or self.n_envs < 1:
            raise ValueError("need grid >= 1, image_size >= 36 (NatureCNN), max_clicks >= 1, total_timesteps >= 1, n_envs >= 1")


QUICK = {"total_timesteps": 256, "n_envs": 2, "n_steps": 64, "batch_size": 32, "n_epochs": 1, "buffer_size": 512,
         "learning_starts": 64, "target_update_interval": 64, "log_every": 10, "rolling": 10}


def env_kwargs(args: Args, split: Optional[str]) -> dict[str, Any]:
    """The ``make_sb3_env`` arguments of a run (the ``sb3`` agent rebuilds the same observation)."""
    kwargs: dict[str, Any] = {"image_size": args.image_size, "text": "words", "max_words": args.max_words,
                              "max_clicks": args.max_clicks, "action_mode": args.action_mode}
    if split is not None:
        kwargs["split"] = split
    if args.segmenter is not None:
        kwargs["segmenter"] = args.segmenter
    return kwargs


class EpisodeIoU(gym.Wrapper):
    """Adds ``info["episode_iou"] = {"initial", "final", "gain"}`` on an episode's last step.

    Why a wrapper: SB3 resets finished envs itself and keeps the reset ``info`` out of sight of a
    callback, so the initial IoU is caught here, inside the env, where every reset passes.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._initial = 0.0

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._initial = float(info["iou"])
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            final = float(info["iou"])
            info = {**info, "episode_iou": {"initial": self._initial, "final": final, "gain": final - self._initial}}
        return obs, reward, terminated, truncated, info


def make_train_env(args: Args, rank: int) -> gym.Env:
    """Env ``rank`` of the training vector env: ``make_sb3_env`` + :class:`ClickGrid` + :class:`EpisodeIoU`."""
    from segenv.wrappers import ClickGrid, make_sb3_env

    env = ClickGrid(make_sb3_env(args.env_id, **env_kwargs(args, args.split)), grid=args.grid)
    env = EpisodeIoU(env)
    env.reset(seed=args.seed + rank)
    return env


def observation_codecs(env: gym.Env) -> tuple[Any, Any]:
    """The :class:`segenv.wrappers.WordCodec` and :class:`segenv.wrappers.GridCodec` inside a
    training env: what ``args.json`` records so the ``sb3`` agent encodes exactly as training did."""
    from segenv.wrappers import ClickGrid, TextToWords

    found: dict[type, Any] = {}
    while isinstance(env, gym.Wrapper):
        if isinstance(env, (ClickGrid, TextToWords)):
            found[type(env)] = env.codec
        env = env.env
    return found[TextToWords], found[ClickGrid]


def iou_logger(args: Args, rows: list[dict], t0: float):
    """An SB3 callback that appends one row per finished episode to ``rows`` and logs progress.

    Built in a function so the SB3 import stays lazy (``segagent[rl]`` is an optional extra).
    """
    from stable_baselines3.common.callbacks import BaseCallback

    class IoULogger(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                ep = info.get("episode_iou")
                if ep is None:
                    continue
                rows.append({"step": int(self.num_timesteps), "gain": ep["gain"], "final_iou": ep["final"],
                             "initial_iou": ep["initial"], "seconds": time.perf_counter() - t0})
                if len(rows) % args.log_every == 0:
                    recent = rows[-args.rolling:]
                    log.info("episodes %d, steps %d, %.0f s: IoU gain %.3f (mean of last %d)", len(rows),
                             self.num_timesteps, rows[-1]["seconds"], float(np.mean([r["gain"] for r in recent])),
                             len(recent))
            if args.max_minutes is not None and time.perf_counter() - t0 > 60 * args.max_minutes:
                log.info("--max-minutes %.1f reached at step %d", args.max_minutes, self.num_timesteps)
                return False
            return True

    return IoULogger()


def build_model(args: Args, venv: Any) -> Any:
    """SB3 PPO or DQN with ``MultiInputPolicy``: by default over :class:`agents.rl_extractor.WordFiLMGridCNN`
    with a linear action / Q head (each cell's logit read from that cell's features); with
    ``--extractor nature`` SB3's own NatureCNN + one-hot words and MLP heads."""
    from stable_baselines3 import DQN, PPO

    policy_kwargs: dict[str, Any] = {}
    if args.extractor == "film":
        from agents.rl_extractor import WordFiLMGridCNN

        policy_kwargs = {"features_extractor_class": WordFiLMGridCNN, "features_extractor_kwargs": {"grid": args.grid},
                         "net_arch": {"pi": [], "vf": [64]} if args.algo == "ppo" else []}
    common = {"learning_rate": args.learning_rate, "gamma": args.gamma, "seed": args.seed, "device": "cpu", "verbose": 0,
              "policy_kwargs": policy_kwargs}
    if args.algo == "ppo":
        return PPO("MultiInputPolicy", venv, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                   ent_coef=args.ent_coef, **common)
    return DQN("MultiInputPolicy", venv, buffer_size=args.buffer_size, learning_starts=args.learning_starts,
               batch_size=args.batch_size, exploration_fraction=args.exploration_fraction,
               target_update_interval=args.target_update_interval, train_freq=4, **common)


def plot_curve(rows: list[dict], rolling: int, title: str, path: Path) -> None:
    """Rolling mean of the episode IoU gain against env steps (matplotlib's Agg backend: no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    if rows:
        gain = np.array([r["gain"] for r in rows])
        steps = np.array([r["step"] for r in rows])
        window = max(1, min(rolling, len(gain)))
        mean = np.convolve(gain, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], mean, lw=1.5)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"episode IoU gain (rolling {rolling})")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Parse the flags, train, write the outputs; return the run's summary (also in ``args.json``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_dataclass(Args, argv, prog="train_rl.py")
    if args.quick:
        args = replace(args, **QUICK, eval_episodes=min(args.eval_episodes, 2) if args.eval_episodes else 0)
    return train(args)


def train(args: Args) -> dict:
    """Train ``args.algo`` and write ``OUT/{model.zip, args.json, curve.json, curve.png}``."""
    try:
        import torch
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError as exc:  # pragma: no cover - the optional extra
        raise SystemExit(f"train_rl.py needs stable-baselines3: pip install 'segagent[rl]' ({exc})") from exc
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    venv = DummyVecEnv([lambda rank=rank: make_train_env(args, rank) for rank in range(args.n_envs)])
    model = build_model(args, venv)
    rows: list[dict] = []
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.total_timesteps, callback=iou_logger(args, rows, t0))
    seconds = time.perf_counter() - t0
    model.save(out / "model.zip")
    recent = rows[-args.rolling:]
    words, grid = observation_codecs(venv.envs[0])
    summary = {
        "args": asdict(args),
        # what the sb3 agent (agents/rl.py) rebuilds from the harness's observation
        "observation": {"image_size": args.image_size, "text": "words", "max_words": words.max_words,
                        "vocabulary": list(words.vocabulary), "hash_buckets": words.hash_buckets, "grid": grid.grid,
                        "action_mode": grid.mode},
        "env_steps": int(model.num_timesteps),
        "episodes": len(rows),
        "train_seconds": seconds,
        "final_rolling_gain": float(np.mean([r["gain"] for r in recent])) if recent else None,
        "torch_threads": torch.get_num_threads(),
    }
    (out / "args.json").write_text(json.dumps(summary, indent=1))
    (out / "curve.json").write_text(json.dumps(rows))
    title = f"{args.algo.upper()} on {args.env_id} ({summary['env_steps']} steps, {seconds / 60:.1f} min)"
    plot_curve(rows, args.rolling, title, out / "curve.png")
    log.info("%s: %d steps, %d episodes in %.0f s; rolling IoU gain %s; wrote %s", args.algo, summary["env_steps"],
             len(rows), seconds, summary["final_rolling_gain"], out)
    venv.close()
    if args.eval_episodes:
        from agents.evaluate import EvalArgs, evaluate

        summary["eval"] = evaluate(EvalArgs(agent="sb3", env=args.env_id, model=str(out / "model.zip"),
                                            episodes=args.eval_episodes, max_clicks=args.max_clicks,
                                            segmenter=args.segmenter, out=str(out / "eval.json"), progress=False))
    return summary


if __name__ == "__main__":
    main()
