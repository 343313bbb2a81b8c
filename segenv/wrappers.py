"""Gymnasium wrappers around :class:`segenv.env.SegEnv`: its time limit, and observations for RL
libraries that cannot take a Text observation (stable-baselines3).

* :class:`ClickBudgetTimeLimit`: the ``TimeLimit`` every registered id gets (through the spec's
  ``additional_wrappers``), kept equal to the env's own budget: ``max_clicks`` clicks plus a box
  first action, so ``max_episode_steps = max_clicks + 1``. ``gym.make(id, max_clicks=3)`` then has
  ``env.spec.max_episode_steps == 4`` and truncates after the third click, exactly as the env does.
* :class:`TextToTokens` turns ``obs["text"]`` into a fixed-length ``Box(uint8)`` of byte codes
  (0 = padding), so the expression stays in the observation without any tokenizer.
* :class:`TextToWords` turns it into ``text_words``: a fixed-length vector of word ids over a small
  vocabulary (the procedural captions' words, other words hashed into buckets), a ``MultiDiscrete``
  that SB3 one-hot encodes, so an MLP can tell "the red circle" from "the blue square" (byte codes,
  read as numbers, are close to useless for a policy's feature extractor).
* :func:`make_sb3_env` composes one of them (``text="bytes"`` or ``"words"``) with a smaller
  observation size and keeps only the keys a policy needs.
* :class:`ClickGrid`: a ``Discrete`` action space for RL (DQN, PPO with a categorical head): a
  ``G x G`` grid of cells times {negative, positive}, plus ``Finish`` and ``No object`` as one
  extra cell each on an ``action_mode="full"`` env.

All follow gymnasium's wrapper conventions (``gymnasium.utils.RecordConstructorArgs``), so a
wrapped env's ``env.spec`` lists its wrappers and ``gym.make(env.spec)`` rebuilds the same env.
"""

from __future__ import annotations

import inspect
import re
import zlib
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import WrapperSpec
from gymnasium.wrappers import TimeLimit

__all__ = ["ClickBudgetTimeLimit", "ClickGrid", "GridCodec", "TextToTokens", "TextToWords", "WordCodec", "make_sb3_env",
           "shapes_vocabulary", "time_limit_kwargs"]


def _default_max_clicks() -> int:
    from .env import SegEnv

    return int(inspect.signature(SegEnv.__init__).parameters["max_clicks"].default)


def time_limit_kwargs(env_kwargs: dict) -> dict[str, Any]:
    """The ``register(...)`` arguments that give an id the time limit of its ``max_clicks``.

    ``max_episode_steps`` is the longest episode the env allows with the id's ``max_clicks`` (the
    env's default, 7, unless the id sets one): one step per click plus one for a box first
    action. :class:`ClickBudgetTimeLimit` (the id's ``additional_wrappers``) keeps it equal to a
    ``max_clicks`` passed to ``gym.make``.
    """
    max_clicks = int(env_kwargs.get("max_clicks", _default_max_clicks()))
    return {
        "max_episode_steps": max_clicks + 1,
        "additional_wrappers": (
            WrapperSpec(name="ClickBudgetTimeLimit", entry_point="segenv.wrappers:ClickBudgetTimeLimit", kwargs={}),
        ),
    }


class ClickBudgetTimeLimit(TimeLimit):
    """``TimeLimit`` at ``max_clicks + 1`` steps, the env's own bound (``max_clicks`` clicks plus a
    box first action; ``Finish`` / ``NoObject`` end the episode), so the TimeLimit never cuts an
    episode the env would continue, and ``env.spec.max_episode_steps`` tells RL libraries the truth.

    ``gym.make`` applies the registered ``TimeLimit`` first and this wrapper right after it; this
    wrapper replaces that one. A ``max_episode_steps`` passed to ``gym.make`` (one that differs
    from the registered value) and smaller than the env's bound is kept: it truncates earlier, and
    the spec says so. ``max_episode_steps=-1`` (no TimeLimit) gives the same episodes as this one,
    since the env truncates itself at ``max_clicks``.
    """

    def __init__(self, env: gym.Env) -> None:
        bound = int(env.unwrapped.max_clicks) + 1
        if isinstance(env, TimeLimit):
            given = env.spec.max_episode_steps if env.spec is not None else None
            registered = _registered_max_episode_steps(env)
            if given is not None and given != registered and given < bound:
                bound = given  # the caller's own, shorter limit
            env = env.env
        super().__init__(env, bound)


def _registered_max_episode_steps(env: gym.Env) -> "int | None":
    spec = env.spec
    if spec is None or spec.id not in gym.registry:
        return None
    return gym.spec(spec.id).max_episode_steps


class TextToTokens(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace the ``text`` key by ``text_tokens``: ``uint8[max_length]`` byte codes, 0-padded.

    Non-ASCII characters become ``?``; text beyond ``max_length`` bytes is cut.
    """

    def __init__(self, env: gym.Env, max_length: int = 64) -> None:
        if int(max_length) < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        gym.utils.RecordConstructorArgs.__init__(self, max_length=int(max_length))
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.observation_space, spaces.Dict) or "text" not in env.observation_space.spaces:
            raise ValueError(f"TextToTokens needs a Dict observation with a 'text' key, got {env.observation_space}")
        self.max_length = int(max_length)
        inner = dict(env.observation_space.spaces)
        inner.pop("text")
        inner["text_tokens"] = spaces.Box(0, 255, (self.max_length,), np.uint8)
        self.observation_space = spaces.Dict(inner)

    def observation(self, observation: dict) -> dict:
        obs = dict(observation)
        data = obs.pop("text").encode("ascii", "replace")[: self.max_length]
        tokens = np.zeros(self.max_length, np.uint8)
        tokens[: len(data)] = np.frombuffer(data, np.uint8)
        obs["text_tokens"] = tokens
        return obs


#: The procedural captions' grammar words (segenv.datasets.shapes: "the small blue ring left of the
#: yellow star", "the red object", "the large square at the top"); colours, shapes and sizes follow.
GRAMMAR_WORDS: tuple[str, ...] = ("the", "object", "on", "at", "left", "right", "top", "bottom", "of", "above", "below")
_WORD = re.compile(r"[a-z0-9]+")


def shapes_vocabulary() -> tuple[str, ...]:
    """Every word the procedural datasets (``shapes``, ``thin_shapes``, their no-target items) write.

    Built from the dataset's own constants, so a new colour or shape joins the vocabulary by itself.
    The order is part of a trained model's input: a run saves the list it was trained with
    (``benchmarks/train_rl.py`` writes it to ``args.json``) and the ``sb3`` agent checks it.
    """
    from .datasets.shapes import COLORS, SIZES, SOLID_SHAPES, THIN_SHAPES

    return GRAMMAR_WORDS + tuple(SIZES) + tuple(COLORS) + tuple(SOLID_SHAPES) + tuple(THIN_SHAPES)


@dataclass(frozen=True)
class WordCodec:
    """Caption <-> fixed-length word ids: the one codec of :class:`TextToWords` and of agents that
    rebuild its observation outside an env (``agents/rl.py``).

    Ids: ``0`` = padding; ``1 .. V`` = the words of ``vocabulary`` in order; a word outside it
    (RefCOCO's "man"; "left-most" splits into "left" "most") goes to one of ``hash_buckets`` ids
    ``V+1 .. V+B`` by CRC-32 of the word, stable across processes and machines (Python's ``hash``
    is salted per process); with ``hash_buckets=0`` every unknown word is the single id ``V+1``
    (``<unk>``). Text is lower-cased and split into runs of letters and digits; words beyond
    ``max_words`` are cut (the longest procedural caption has 9 words).
    """

    vocabulary: tuple[str, ...]
    max_words: int = 12
    hash_buckets: int = 32

    def __post_init__(self) -> None:
        if int(self.max_words) < 1 or int(self.hash_buckets) < 0:
            raise ValueError(f"need max_words >= 1 and hash_buckets >= 0, got {self.max_words}, {self.hash_buckets}")
        if not self.vocabulary or len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError("the vocabulary must be a non-empty list of distinct words")

    @property
    def n_ids(self) -> int:
        """Ids run ``0 .. n_ids - 1``: padding, the words, the unknown-word buckets."""
        return len(self.vocabulary) + 1 + max(1, self.hash_buckets)

    def space(self) -> spaces.MultiDiscrete:
        return spaces.MultiDiscrete(np.full(self.max_words, self.n_ids, np.int64))

    def word_id(self, word: str) -> int:
        """The id of one lower-case word (known: ``1..V``; unknown: its hash bucket)."""
        try:
            return self.vocabulary.index(word) + 1
        except ValueError:
            bucket = zlib.crc32(word.encode("utf-8")) % self.hash_buckets if self.hash_buckets else 0
            return len(self.vocabulary) + 1 + bucket

    def encode(self, text: str) -> np.ndarray:
        """``text`` as ``int64[max_words]`` ids (0-padded, cut at ``max_words`` words)."""
        ids = np.zeros(self.max_words, np.int64)
        words = _WORD.findall(text.lower())[: self.max_words]
        ids[: len(words)] = [self.word_id(w) for w in words]
        return ids

    def decode(self, ids: Sequence[int]) -> list[str]:
        """The words of ``ids`` (padding dropped; an unknown word reads ``<unk:k>``, its bucket)."""
        v = len(self.vocabulary)
        return [self.vocabulary[i - 1] if i <= v else f"<unk:{i - v - 1}>" for i in (int(x) for x in ids) if i != 0]


class TextToWords(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace the ``text`` key by ``text_words``: ``int64[max_words]`` word ids, 0-padded.

    Why: a policy's feature extractor reads a ``Box`` of byte codes as magnitudes ("r" = 114 is
    "near" "s" = 115), so colour and shape words are hard to tell apart; a ``MultiDiscrete`` of word
    ids is one-hot encoded by stable-baselines3 (``preprocess_obs``) and by most RL code, which
    gives a linear layer one input per (position, word). The ids are :class:`WordCodec`'s, over
    ``vocabulary`` (default :func:`shapes_vocabulary`, 29 words) plus ``hash_buckets`` ids for
    other words; ``self.codec`` encodes and decodes.
    """

    def __init__(
        self,
        env: gym.Env,
        max_words: int = 12,
        vocabulary: Optional[Sequence[str]] = None,
        hash_buckets: int = 32,
    ) -> None:
        vocab = tuple(shapes_vocabulary() if vocabulary is None else (str(w).lower() for w in vocabulary))
        self.codec = WordCodec(vocab, int(max_words), int(hash_buckets))
        gym.utils.RecordConstructorArgs.__init__(
            self, max_words=int(max_words), vocabulary=None if vocabulary is None else list(vocab),
            hash_buckets=int(hash_buckets))
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.observation_space, spaces.Dict) or "text" not in env.observation_space.spaces:
            raise ValueError(f"TextToWords needs a Dict observation with a 'text' key, got {env.observation_space}")
        inner = dict(env.observation_space.spaces)
        inner.pop("text")
        inner["text_words"] = self.codec.space()
        self.observation_space = spaces.Dict(inner)

    # the codec's API on the wrapper, so ``env.get_wrapper_attr("decode")`` reaches it
    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.codec.vocabulary

    @property
    def n_ids(self) -> int:
        return self.codec.n_ids

    def word_id(self, word: str) -> int:
        return self.codec.word_id(word)

    def encode(self, text: str) -> np.ndarray:
        return self.codec.encode(text)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return self.codec.decode(ids)

    def observation(self, observation: dict) -> dict:
        obs = dict(observation)
        obs["text_words"] = self.codec.encode(obs.pop("text"))
        return obs


@dataclass(frozen=True)
class GridCodec:
    """Discrete index <-> typed action for a ``G x G`` click grid: the one codec of :class:`ClickGrid`
    and of agents that map a trained policy's index back to a click outside the wrapper.

    Index ``i < 2 G^2``: ``positive = i >= G^2``, cell ``k = i mod G^2`` (row-major, ``k = row * G +
    col``), clicked at the cell centre ``((col + 0.5) / G, (row + 0.5) / G)``: the one grid codec
    of the action text's ``<loc_k>`` tokens. With ``mode="full"`` two more indices follow: ``2 G^2``
    is ``Finish`` and ``2 G^2 + 1`` is ``No object``.
    """

    grid: int
    mode: str = "click"

    def __post_init__(self) -> None:
        if int(self.grid) < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")

    @property
    def n_clicks(self) -> int:
        return 2 * self.grid**2

    @property
    def n(self) -> int:
        """The size of the ``Discrete`` action space."""
        return self.n_clicks + (2 if self.mode == "full" else 0)

    def to_action(self, index: int):
        """The typed action (:mod:`segenv.actions`) of ``index``."""
        from .actions import NO_OBJECT, STOP, Click

        i = int(index)
        if not 0 <= i < self.n:
            raise ValueError(f"action index {index!r} is outside Discrete({self.n})")
        if i >= self.n_clicks:
            return STOP if i == self.n_clicks else NO_OBJECT
        g2 = self.grid**2
        row, col = divmod(i % g2, self.grid)
        return Click((col + 0.5) / self.grid, (row + 0.5) / self.grid, i >= g2)

    def index_of(self, action) -> int:
        """The index of a typed action (a click goes to the cell it falls in)."""
        from .actions import Click, end_action_name, parse_action

        action = parse_action(action)
        end = end_action_name(action)
        if end is not None:
            if self.mode != "full":
                raise ValueError("end actions need an action_mode='full' env")
            return self.n_clicks + (0 if end == "finish" else 1)
        if not isinstance(action, Click):
            raise ValueError(f"only clicks and end actions have a grid index, got {action!r}")
        g = self.grid
        cell = min(int(action.y * g), g - 1) * g + min(int(action.x * g), g - 1)
        return cell + (g * g if action.positive else 0)


class ClickGrid(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Discrete(2 G^2 [+ 2])`` actions: a click at a cell centre of a ``G x G`` grid, or an end action.

    The indices are :class:`GridCodec`'s (``self.codec``): ``i < 2 G^2`` is a click, positive when
    ``i >= G^2``, at the centre of cell ``i mod G^2`` (row-major). On an ``action_mode="full"`` env
    two more indices follow: ``2 G^2`` is ``Finish`` and ``2 G^2 + 1`` is ``No object``; a
    click-mode env has no end actions (a ``Box(3)`` cannot express them). :meth:`index_of` maps an
    action back to its index.
    """

    def __init__(self, env: gym.Env, grid: int = 32) -> None:
        self.codec = GridCodec(int(grid), getattr(env.unwrapped, "action_mode", "click"))
        gym.utils.RecordConstructorArgs.__init__(self, grid=int(grid))
        gym.ActionWrapper.__init__(self, env)
        self.grid = self.codec.grid
        self.mode = self.codec.mode
        self.n_clicks = self.codec.n_clicks
        self.action_space = spaces.Discrete(self.codec.n)

    def to_action(self, index: int):
        """The typed action (:mod:`segenv.actions`) of ``index``."""
        return self.codec.to_action(index)

    def index_of(self, action) -> int:
        """The index of a typed action (a click goes to the cell it falls in)."""
        return self.codec.index_of(action)

    def action(self, action: Any) -> np.ndarray:
        from .actions import action_to_space

        return action_to_space(self.to_action(int(np.asarray(action).reshape(-1)[0])), self.mode)


def make_sb3_env(
    env_id: str = "SegAgent-Shapes-v0",
    keys: Optional[Sequence[str]] = None,
    image_size: int = 64,
    max_text_length: int = 64,
    text: Literal["bytes", "words"] = "bytes",
    max_words: int = 12,
    **kwargs: Any,
) -> gym.Env:
    """An env that stable-baselines3's ``PPO("MultiInputPolicy")`` / ``DQN`` accept: a Dict of uint8
    images and small integer vectors.

    ``gym.make(env_id, image_size=image_size, **kwargs)``, the text as :class:`TextToTokens`
    (``text="bytes"``, ``max_text_length`` bytes, key ``text_tokens``; the default, as before) or
    :class:`TextToWords` (``text="words"``, ``max_words`` word ids, key ``text_words``: what a policy
    should learn from), then ``gymnasium.wrappers.FilterObservation(keys)`` (default: ``overlay``
    and the text key). Images stay ``HxWx3`` uint8: SB3 transposes them to channels-first and
    scales them to [0, 1] itself. ``env.spec`` records all of it, so ``gym.make(env.spec)`` rebuilds it.
    """
    import segenv  # noqa: F401  (registers ids)

    if text not in ("bytes", "words"):
        raise ValueError(f"text must be 'bytes' or 'words', got {text!r}")
    env = gym.make(env_id, image_size=image_size, **kwargs)
    if text == "words":
        env = TextToWords(env, max_words=max_words)
    else:
        env = TextToTokens(env, max_text_length)
    if keys is None:
        keys = ("overlay", "text_words" if text == "words" else "text_tokens")
    return gym.wrappers.FilterObservation(env, filter_keys=list(keys))
