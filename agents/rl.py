"""A stable-baselines3 policy as an agent: ``--agent sb3 --model RUN/model.zip``.

``benchmarks/train_rl.py`` trains PPO or DQN on ``make_sb3_env(text="words")`` inside
``ClickGrid``; this agent plays the saved model through the normal harness (held-out episodes,
every metric) by rebuilding that observation from the harness's full observation:

* ``overlay``: resized to the training ``image_size`` (INTER_AREA) when the env's differs; the
  agent also asks the harness for that size (``env_overrides``), so by default it sees exactly the
  pixels it was trained on;
* ``text``: word ids through the same :class:`segenv.wrappers.WordCodec` (vocabulary and bucket
  count read from ``args.json``);
* the ``Discrete`` index back to a click (or end action) through :class:`segenv.wrappers.GridCodec`.

``args.json`` must lie beside the model (train_rl.py writes it); the model's spaces are checked
against it so a model from another run or another grid fails at load, not silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from segenv.wrappers import GridCodec, WordCodec

SB3_ALGOS = ("ppo", "dqn")


def _load_sb3(algo: str, path: Path) -> Any:
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:
        raise ImportError("the sb3 agent needs stable-baselines3: pip install 'segagent[rl]'") from exc
    cls = {"ppo": sb3.PPO, "dqn": sb3.DQN}[algo]
    return cls.load(str(path), device="cpu")


@dataclass
class SB3Agent:
    """Acts with a trained SB3 model (``model.zip`` + ``args.json`` beside it), greedily by default.

    Args:
        model: path to the run's ``model.zip`` (or its folder).
        temperature: 0 = the most likely action (PPO's argmax, DQN's greedy Q). ``T > 0`` samples
            from ``softmax(logits / T)`` (PPO: the policy's own distribution at ``T = 1``, the one
            its training curve measured; DQN: a Boltzmann draw over Q-values), with a numpy
            generator seeded by ``(seed, sample_index)``: the same episode gives the same clicks.
            Why offer it: a feed-forward policy that picks its argmax tends to repeat one cell
            (docs/rl.md), where sampling keeps trying other cells as it did in training.
        seed: seeds the sampling.
    """

    model: str
    temperature: float = 0.0
    seed: int = 0
    needs_gt: bool = False
    run: dict = field(init=False, repr=False)
    words: WordCodec = field(init=False, repr=False)
    grid: GridCodec = field(init=False, repr=False)
    image_size: int = field(init=False)
    _policy: Any = field(init=False, repr=False)
    _algo: str = field(init=False, repr=False)
    _rng: Optional[np.random.Generator] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        path = Path(self.model)
        if path.is_dir():
            path = path / "model.zip"
        if not path.is_file():
            raise FileNotFoundError(f"no SB3 model at {path}: pass --model RUN/model.zip from benchmarks/train_rl.py")
        args_path = path.with_name("args.json")
        if not args_path.is_file():
            raise FileNotFoundError(f"{args_path} is missing: the sb3 agent reads the run's observation transform "
                                    "from the args.json that benchmarks/train_rl.py writes beside model.zip")
        self.run = json.loads(args_path.read_text())
        obs = self.run.get("observation") or {}
        algo = str(self.run.get("args", {}).get("algo", ""))
        if algo not in SB3_ALGOS or obs.get("text") != "words":
            raise ValueError(f"{args_path}: expected a train_rl.py run (algo in {SB3_ALGOS}, text 'words'), "
                             f"got algo={algo!r}, text={obs.get('text')!r}")
        self.words = WordCodec(tuple(obs["vocabulary"]), int(obs["max_words"]), int(obs["hash_buckets"]))
        self.grid = GridCodec(int(obs["grid"]), str(obs["action_mode"]))
        self.image_size = int(obs["image_size"])
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        self._algo = algo
        self._policy = _load_sb3(algo, path)
        self._check_spaces(path)

    def _check_spaces(self, path: Path) -> None:
        """The model's spaces must be the ones ``args.json`` describes (same grid, size, vocabulary)."""
        space = self._policy.observation_space
        s = self.image_size
        expected = {"overlay": (s, s, 3), "text_words": (self.words.max_words,)}
        got = {k: tuple(space[k].shape) for k in expected if k in getattr(space, "spaces", {})}
        if got.get("overlay") == (3, s, s):  # SB3 stores the channels-first space of its VecTransposeImage
            got["overlay"] = (s, s, 3)
        problems = []
        if got != expected:
            problems.append(f"observation shapes {got} != {expected}")
        elif not np.all(space["text_words"].nvec == self.words.n_ids):
            problems.append(f"{int(space['text_words'].nvec[0])} word ids != {self.words.n_ids}")
        n = int(getattr(self._policy.action_space, "n", -1))
        if n != self.grid.n:
            problems.append(f"Discrete({n}) actions != grid {self.grid.grid} ({self.grid.mode}): Discrete({self.grid.n})")
        if problems:
            raise ValueError(f"{path} does not match the args.json beside it: " + "; ".join(problems))

    @property
    def env_overrides(self) -> dict[str, Any]:
        """The harness renders observations at the training size (no resize, the same pixels)."""
        return {"image_size": self.image_size}

    def observation(self, obs: dict) -> dict[str, np.ndarray]:
        """The harness's observation as the model's: ``overlay`` SxSx3 uint8, ``text_words`` int64."""
        overlay = np.asarray(obs["overlay"], np.uint8)
        if overlay.shape[:2] != (self.image_size, self.image_size):
            import cv2

            overlay = cv2.resize(overlay, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        return {"overlay": overlay, "text_words": self.words.encode(str(obs["text"]))}

    def reset(self, obs: dict, info: dict) -> None:
        """Only the sampling generator: the policy is feed-forward (the overlay carries the episode's state)."""
        self._rng = np.random.default_rng([self.seed, int(info.get("sample_index", 0))])

    def act(self, obs: dict, info: dict) -> Any:
        seen = self.observation(obs)
        if self.temperature == 0:
            index, _ = self._policy.predict(seen, deterministic=True)
            return self.grid.to_action(int(np.asarray(index).reshape(-1)[0]))
        assert self._rng is not None, "call reset() first"
        logits = self.logits(seen) / self.temperature
        p = np.exp(logits - logits.max())
        return self.grid.to_action(int(self._rng.choice(len(p), p=p / p.sum())))

    def logits(self, seen: dict[str, np.ndarray]) -> np.ndarray:
        """PPO's action logits or DQN's Q-values for one observation (float64[n])."""
        import torch

        policy = self._policy.policy
        tensor, _ = policy.obs_to_tensor(seen)
        with torch.no_grad():
            if self._algo == "ppo":
                out = policy.get_distribution(tensor).distribution.logits
            else:
                out = policy.q_net(tensor)
        return out[0].double().cpu().numpy()


def make_sb3_agent(model: Optional[str], temperature: float = 0.0, seed: int = 0) -> SB3Agent:
    """The registry's builder: a clear error when ``--model`` is missing."""
    if not model:
        raise ValueError("--agent sb3 needs --model RUN/model.zip (a benchmarks/train_rl.py output)")
    return SB3Agent(model=str(model), temperature=float(temperature), seed=int(seed))
