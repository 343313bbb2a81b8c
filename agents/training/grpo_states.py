"""GRPO's prompts and rewards: env states that can be restored exactly, and pure reward functions.

Why a state is stored as a *recipe* and not as a mask: the reward of a proposed click is the IoU
gain the env's segmenter gives from that state, and the segmenter's answer depends on every prompt
so far (clicks, the initial points, its previous logits), not only on the visible mask. So each
prompt row keeps what :meth:`StateRestorer.restore` needs to rebuild the env exactly: the env id
and split, the sample index, the reset seed (the ``points`` initial state draws its points from
it), the initial state, and the actions taken so far (clicks; ``None`` for an invalid step). The
reward replays that recipe and applies the completion's action (:func:`iou_gain`).

* :func:`gather_states` rolls a policy (the SFT tiny model, greedy, as the benchmark runs it) out
  through the rollout harness and records every state it visits, with the overlay it saw (the
  prompt image) and the true IoU of that mask (for the ``Current IOU`` line's reward).
* Rewards (each a pure function of texts and numbers, or of a restorer and a state):
  :func:`format_reward` (1 for an answer the grammar parses, with its IoU line when the format has
  one), :func:`iou_line_reward` (``max(0, 1 - |stated - true| / tolerance)``) and
  :func:`iou_gain` (``IoU(after) - IoU(before)``; ``Finish`` earns 0, as in the env, and an
  unparsable answer 0: the env keeps its mask on an invalid step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from agents.mllm.prompt import ActionFormat, parse_action_text
from segenv.actions import INVALID, Click, Finish

log = logging.getLogger(__name__)

ClickRecord = Optional[tuple[float, float, bool]]  # (x, y, positive) normalised; None = an invalid step


@dataclass(frozen=True)
class PromptState:
    """The recipe of one env state (module docstring).

    Attributes:
        sample_index: the dataset item.
        seed: the ``env.reset`` seed of the episode (the ``points`` start draws from it).
        initial_state: ``"empty"``, ``"points"``, ... (the env's ``initial_state``).
        history: the actions taken before this state, in order (``None`` = an invalid step).
        iou: the true IoU of the state's mask (recorded at gathering; the restore checks it).
    """

    sample_index: int
    seed: int
    initial_state: str
    history: tuple[ClickRecord, ...] = ()
    iou: float = float("nan")

    def to_row(self) -> dict:
        """Flat columns for a ``datasets`` row (``hist_pos`` -1 marks an invalid step)."""
        xs, ys, pos = [], [], []
        for click in self.history:
            xs.append(-1.0 if click is None else float(click[0]))
            ys.append(-1.0 if click is None else float(click[1]))
            pos.append(-1 if click is None else int(bool(click[2])))
        return {"sample_index": int(self.sample_index), "seed": int(self.seed), "initial_state": self.initial_state,
                "hist_x": xs, "hist_y": ys, "hist_pos": pos, "iou": float(self.iou)}

    @classmethod
    def from_row(cls, row: dict) -> "PromptState":
        """The inverse of :meth:`to_row` (any mapping with those keys, e.g. one reward-kwargs slice)."""
        history = tuple(None if int(p) < 0 else (float(x), float(y), bool(p))
                        for x, y, p in zip(row["hist_x"], row["hist_y"], row["hist_pos"]))
        return cls(int(row["sample_index"]), int(row["seed"]), str(row["initial_state"]), history, float(row["iou"]))


@dataclass
class StateRestorer:
    """Rebuilds env states from :class:`PromptState` recipes (one env per initial state, made lazily).

    ``obs_size`` and ``max_clicks`` must be the ones the states were gathered with (the observation
    the prompt image came from); the IoU is computed at the sample's resolution either way.
    """

    env_id: str = "SegAgent-Shapes-v0"
    split: str = "train"
    obs_size: int = 512
    max_clicks: int = 5
    env_kwargs: dict = field(default_factory=dict)
    _envs: dict = field(default_factory=dict, init=False, repr=False)

    def env(self, initial_state: str) -> Any:
        if initial_state not in self._envs:
            import gymnasium as gym

            import segenv  # noqa: F401  (registers the env ids)

            # the passive checker wraps reset/step with checks that assume a fresh episode flow; the
            # env itself is checked by check_env in tests/segenv
            self._envs[initial_state] = gym.make(self.env_id, split=self.split, max_clicks=self.max_clicks,
                                                 image_size=self.obs_size, initial_state=initial_state,
                                                 disable_env_checker=True, **self.env_kwargs)
        return self._envs[initial_state]

    def restore(self, state: PromptState) -> tuple[dict, dict]:
        """Reset to the state's episode and replay its history; returns ``(obs, info)`` of the state."""
        env = self.env(state.initial_state)
        obs, info = env.reset(seed=state.seed, options={"index": state.sample_index})
        for click in state.history:
            action = INVALID if click is None else Click(float(click[0]), float(click[1]), bool(click[2]))
            obs, _, _, _, info = env.step(action)
        return obs, info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def completion_text(completion: Any) -> str:
    """The answer text of one trl completion (a string, or conversational ``[{"role", "content"}]``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    return str(completion)


def format_reward(texts: Sequence[str], fmt: ActionFormat) -> list[float]:
    """1.0 for an answer that parses to an action (and states its ``Current IOU`` line when
    ``fmt.iou_line``), else 0.0: a small pull towards answers the harness can use."""
    out = []
    for text in texts:
        parsed = parse_action_text(text, fmt)
        out.append(1.0 if parsed.ok and (parsed.iou is not None or not fmt.iou_line) else 0.0)
    return out


def iou_line_reward(texts: Sequence[str], true_ious: Sequence[float], fmt: ActionFormat,
                    tolerance: float = 0.1) -> list[float]:
    """``max(0, 1 - |stated - true| / tolerance)`` per answer (IoUs as fractions; 0 without a line).

    The stated IoU is the policy's process reward (the PRM); keeping it honest matters because the
    policy's ``Finish`` follows it.
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    out = []
    for text, true in zip(texts, true_ious):
        stated = parse_action_text(text, fmt).iou
        out.append(0.0 if stated is None else max(0.0, 1.0 - abs(float(stated) - float(true)) / tolerance))
    return out


def iou_gain(restorer: StateRestorer, state: PromptState, text: str, fmt: ActionFormat) -> float:
    """The IoU gain of the answer ``text`` applied in ``state``: restore, step, ``IoU(after) - IoU(before)``.

    ``Finish`` and an unparsable answer earn 0 (the mask does not change); ``No Object Found``
    empties the mask (a loss unless the target is empty), as the env scores it.
    """
    parsed = parse_action_text(text, fmt)
    if not parsed.ok or isinstance(parsed.action, Finish):
        return 0.0
    env = restorer.env(state.initial_state)
    _, info = restorer.restore(state)
    before = float(info["iou"])
    _, _, _, _, info = env.step(parsed.action)
    return float(info["iou"]) - before


class _Recorder:
    """Wraps a policy: before each action it records the state (overlay, text, true IoU, history)."""

    needs_gt = False

    def __init__(self, policy: Any, sample_index: int, seed: int, initial_state: str, sink: list,
                 image_size: Optional[int] = None) -> None:
        self.policy, self.sink, self.image_size = policy, sink, image_size
        self.key = (sample_index, seed, initial_state)
        self.history: list[ClickRecord] = []
        self.last: Any = None

    def reset(self, obs: dict, info: dict) -> None:
        self.history = []
        self.policy.reset(obs, info)

    def act(self, obs: dict, info: dict) -> Any:
        # info is the harness's stripped view (no ground truth); its iou is a number the policy never sees
        state = PromptState(*self.key, tuple(self.history), float(info["iou"]))
        overlay = np.asarray(obs["overlay"])
        if self.image_size:
            from .tiny_data import prep_image

            overlay = prep_image(overlay, self.image_size)
        self.sink.append((state, overlay.copy(), str(obs["text"])))
        self.last = self.policy.act(obs, info)
        return self.last

    def record(self, invalid: bool) -> None:
        """After the harness applied the step: keep the exact click (the harness's record is float32),
        or None when the env counted the step invalid. End actions end the episode: never replayed."""
        click = self.last if isinstance(self.last, Click) and not invalid else None
        self.history.append(None if click is None else (float(click.x), float(click.y), bool(click.positive)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


def gather_states(policy: Any, restorer: StateRestorer, items: Sequence[int], initial_states: Sequence[str],
                  seed: int = 0, limit: Optional[int] = None,
                  image_size: Optional[int] = None) -> list[tuple[PromptState, np.ndarray, str]]:
    """Every state ``policy`` visits on ``items`` from each of ``initial_states`` (item ``i``, start
    ``s``: reset seed ``seed * 100003 + i``), as ``(PromptState, overlay uint8 SxSx3, text)``, stopping
    once ``limit`` states are gathered. Episodes run through :func:`segenv.rollout.run_episode`.

    ``image_size``: keep the overlay resized to that side (PIL bicubic,
    :func:`agents.training.tiny_data.prep_image`) instead of the observation's S x S. For the tiny
    model pass its processor's input size: its processor resizes the same way, so the pixels it
    sees are identical (tested), and a 512 px PNG costs ~0.5 s to encode on this CPU against ~0.02 s."""
    from segenv.rollout import run_episode

    out: list = []
    for n, i in enumerate(items):
        if n and n % 100 == 0:
            log.info("gathering states: %d items, %d states", n, len(out))
        for start in initial_states:
            ep_seed = int(seed * 100003 + i)
            rec = _Recorder(policy, int(i), ep_seed, start, out, image_size)
            run_episode(rec, restorer.env(start), seed=ep_seed, index=int(i),
                        on_step=lambda obs, record, info, rec=rec: rec.record(record.invalid))
            if limit is not None and len(out) >= limit:
                return out[:limit]
    return out


__all__ = ["PromptState", "StateRestorer", "completion_text", "format_reward", "gather_states", "iou_gain",
           "iou_line_reward"]
