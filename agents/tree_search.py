"""PRM-guided tree search: K candidate clicks per step, keep the one whose mask the PRM rates best.

SegAgent's planner (paper sec. 4.4, Alg. 2; supplementary B.3, Fig. 5): at every step the policy
proposes several actions, the segmenter turns each into a mask, the process reward model (the
policy's own ``Current IOU`` line, :mod:`agents.prm`) scores every mask, and the action with the
highest predicted IoU makes the next mask. The paper released no code for it; this module
implements that description on segenv's pieces, each batched so a step costs a fixed number of
calls however large K is:

* the greedy answer on the current mask (its ``Current IOU`` line is the current score ``c`` and
  its action is candidate 0): reused from the previous step's PRM call when the PRM is the policy
  itself, so it costs nothing after the first step;
* ``K - 1`` sampled candidates from ONE ``generate`` call (:meth:`MLLMPolicy.propose`), seeded per
  (agent seed, sample, step) inside a forked torch RNG: same seed, same trajectory, and no change
  to the caller's global RNG;
* ONE segmenter ``predict_many`` call for all candidate masks (:meth:`segenv.SegEnv.preview`, via
  the GT-free :class:`segenv.lookahead.Lookahead` the harness attaches);
* ONE batched PRM ``generate`` over the K previewed overlays (:meth:`agents.prm.PRM.score_many`).

Stopping (issue #21: the planner uses ``Finish`` where it stops early): the search returns the
policy's own ``Finish`` / ``No Object Found`` when its greedy answer says so, and ``Finish`` when no
candidate's predicted IoU beats the current mask's by more than ``stop_margin`` (the PRM sees
nothing left to gain). ``stop_when_no_gain=False`` keeps clicking until the budget ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from segenv.actions import Finish, NoObject, end_action_name

from .prm import PRM, READOUTS


@dataclass
class TreeSearchConfig:
    """Knobs of :class:`TreeSearchAgent`.

    Args:
        k: candidates per step, the greedy action included (``k=1`` is the greedy policy plus the
            PRM stopping rule).
        stop_margin: stop with ``Finish`` when the best candidate's predicted IoU is at most the
            current mask's plus this (IoU fraction; 0 = stop unless some candidate is predicted better).
        stop_when_no_gain: use that rule at all (False: click until the budget ends).
        respect_end: return the policy's own ``Finish`` / ``No Object Found`` greedy answers.
        seed: the base of the per-step proposal seeds.
        tie_margin: take the FIRST candidate (the greedy one, then the proposals in the policy's
            order: beams by likelihood) whose score is within this of the best score (IoU
            fraction; 0 = the best score, first on exact ties). A PRM that judges mask quality,
            not which object is meant, rates masks of different whole objects alike (0.99 vs
            0.99): a margin leaves such ties to the policy instead of to score noise.
        proposals: how the other candidates are drawn: ``"sample"`` (``k - 1`` answers sampled at
            the policy's temperature; repeats dropped) or ``"beam"`` (the ``k`` most likely
            actions by beam search after the greedy IoU line; deterministic and distinct,
            :mod:`agents.mllm.proposals`).
        prm_readout: how the policy's own IoU line is read when it is the PRM (``prm=None``):
            ``"greedy"`` (the stated number), ``"median"`` or ``"mean"`` of its distribution over
            the value tokens (:class:`agents.prm.PRM`). A separate PRM carries its own readout.
    """

    k: int = 4
    stop_margin: float = 0.0
    stop_when_no_gain: bool = True
    respect_end: bool = True
    seed: int = 0
    prm_readout: str = "greedy"
    proposals: str = "sample"
    tie_margin: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"tree search needs k >= 1 candidates per step, got {self.k}")
        if self.proposals not in ("sample", "beam"):
            raise ValueError(f"proposals must be 'sample' or 'beam', got {self.proposals!r}")
        if self.prm_readout not in READOUTS:
            raise ValueError(f"prm_readout must be one of {READOUTS}, got {self.prm_readout!r}")
        if not math.isfinite(self.tie_margin) or not 0.0 <= self.tie_margin <= 1.0:
            raise ValueError(f"tie_margin is an IoU fraction in [0, 1], got {self.tie_margin}")
        if not math.isfinite(self.stop_margin) or not -1.0 <= self.stop_margin <= 1.0:
            raise ValueError(f"stop_margin is an IoU fraction in [-1, 1], got {self.stop_margin}")


@dataclass
class SearchStats:
    """Running totals over episodes (for benchmarks and the paper report)."""

    steps: int = 0
    candidates: int = 0  # candidate masks scored by the PRM
    chose_greedy: int = 0  # steps whose chosen click was the greedy one
    stopped_by_prm: int = 0  # Finish because no candidate was predicted to improve the mask
    stopped_by_policy: int = 0  # the policy's own Finish / No Object Found
    unscored: int = 0  # candidates whose PRM answer had no readable IoU line
    prm_calls: int = 0  # batched PRM generate calls
    preview_calls: int = 0  # batched segmenter calls

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class _Answer:
    """The greedy answer on one observation: its action and stated IoU (NaN when unreadable)."""

    action: Any
    iou: float
    text: str
    overlay_key: bytes = field(repr=False, default=b"")


class TreeSearchAgent:
    """A segenv agent that plans with a policy (proposals) and a PRM (scores); never reads the GT.

    Args:
        policy: an :class:`agents.mllm.policy.MLLMPolicy` (anything with its ``generate(obs, n,
            do_sample)`` and ``propose(obs, k)``); build it with ``do_sample=True`` and the proposal
            temperature.
        prm: a :class:`agents.prm.PRM`; None = the policy judges its own masks (as in the paper).
        config: :class:`TreeSearchConfig`.

    Attributes after each ``act``: ``last_iou`` (the predicted IoU of the mask acted on: the
    harness's ``best_predicted`` rule reads it), ``last_output`` (the chosen answer's text, with the
    search's scores), ``last_search`` (candidates, scores, why it stopped); ``stats`` over episodes.
    """

    needs_gt = False

    def __init__(self, policy: Any, prm: Optional[PRM] = None, config: Optional[TreeSearchConfig] = None) -> None:
        missing = [name for name in ("generate", "propose") if not callable(getattr(policy, name, None))]
        if missing:
            raise TypeError(f"tree search needs a policy with generate() and propose() (an MLLMPolicy); "
                            f"{type(policy).__name__} lacks {', '.join(missing)}")
        self.policy = policy
        self.config = config or TreeSearchConfig()
        self.shares_model = prm is None
        self.prm = prm if prm is not None else PRM(policy, readout=self.config.prm_readout)
        self.stats = SearchStats()
        self._lookahead: Any = None
        self._next: Optional[_Answer] = None  # the PRM's answer on the mask the chosen click makes
        self.last_iou: Optional[float] = None
        self.last_output: Optional[str] = None
        self.last_search: dict = {}

    # ------------------------------------------------------------------ agent protocol
    def attach_lookahead(self, lookahead: Any) -> None:
        """Called by the rollout harness before each episode (:mod:`segenv.lookahead`)."""
        self._lookahead = lookahead

    def reset(self, obs: dict, info: dict) -> None:
        self._next = None
        self.last_iou, self.last_output, self.last_search = None, None, {}

    def act(self, obs: dict, info: dict) -> Any:
        if self._lookahead is None:
            raise RuntimeError("tree search previews candidate masks: run it through segenv.rollout.run_episode "
                               "(which attaches the env's Lookahead) or call attach_lookahead() first")
        cfg = self.config
        self.stats.steps += 1
        greedy = self._greedy(obs)
        self.last_iou = None if math.isnan(greedy.iou) else greedy.iou
        current = -math.inf if math.isnan(greedy.iou) else greedy.iou
        if cfg.respect_end and end_action_name(greedy.action) is not None:
            self.stats.stopped_by_policy += 1
            return self._done(greedy.action, greedy.text, {"stop": "policy", "current": greedy.iou})
        candidates, texts = self._candidates(obs, info, greedy)
        if not candidates:  # nothing usable proposed: the greedy answer (None = an invalid step)
            return self._done(greedy.action, greedy.text, {"stop": None, "current": greedy.iou})
        previews = self._lookahead.preview(candidates)
        self.stats.preview_calls += 1
        scores = self.prm.score_many(previews)
        self.stats.prm_calls += 1
        self.stats.candidates += len(scores)
        self.stats.unscored += sum(math.isnan(s) for s in scores)
        ranked = [-math.inf if math.isnan(s) else s for s in scores]
        top = max(ranked)
        floor = top - cfg.tie_margin  # the first candidate this close to the best is taken
        if cfg.stop_when_no_gain and top > current + cfg.stop_margin:  # ... among those that improve
            floor = max(floor, math.nextafter(current + cfg.stop_margin, math.inf))
        best = next(i for i, r in enumerate(ranked) if r >= floor)
        search = {"current": greedy.iou, "scores": [float(s) for s in scores],
                  "candidates": [repr(c) for c in candidates], "best": best}
        if cfg.stop_when_no_gain and ranked[best] <= current + cfg.stop_margin:
            self.stats.stopped_by_prm += 1
            search["stop"] = "prm"
            return self._done(Finish(), "Finish", search)
        parsed = self.prm.last_parsed[best]  # the PRM's answer on the mask this click makes: next step's
        self._next = _Answer(parsed.action, scores[best], parsed.text, _overlay_key(previews[best]))  # score
        self.stats.chose_greedy += int(best == 0 and candidates[0] == greedy.action)
        search["stop"] = None
        return self._done(candidates[best], texts[best], search)

    # ------------------------------------------------------------------ pieces
    def _greedy(self, obs: dict) -> _Answer:
        """The greedy answer on ``obs`` and the PRM's IoU of its mask. The last step's PRM call
        already scored this very overlay (the chosen candidate's preview), so that score is reused;
        when the PRM is the policy itself its answer is also the greedy action (no model call)."""
        cached, self._next = self._next, None
        if cached is not None and cached.overlay_key != _overlay_key(obs):
            cached = None
        if self.shares_model:
            if cached is not None:
                return cached
            score = self.prm.score_many([obs])[0]
            self.stats.prm_calls += 1
            parsed = self.prm.last_parsed[0]
            return _Answer(parsed.action, score, parsed.text)
        if cached is not None:
            score = cached.iou
        else:
            score = self.prm.score_many([obs])[0]
            self.stats.prm_calls += 1
        parsed = self.policy.generate(obs, 1, do_sample=False)[0]
        return _Answer(parsed.action, score, parsed.text)

    def _candidates(self, obs: dict, info: dict, greedy: _Answer) -> tuple[list, list[str]]:
        """The greedy click first, then up to ``k - 1`` distinct sampled clicks (end answers and
        unparsable ones are not candidates: stopping is decided above)."""
        actions: list = []
        texts: list[str] = []
        if greedy.action is not None and end_action_name(greedy.action) is None:
            actions.append(greedy.action)
            texts.append(greedy.text)
        want = self.config.k - len(actions)
        if want > 0:
            with _seeded_torch(self._step_seed(info), getattr(self.policy, "device", None)):
                if self.config.proposals == "beam":  # its top answer is usually the greedy one
                    proposals = self.policy.propose(obs, self.config.k, method="beam", clicks_only=True)
                else:
                    proposals = self.policy.propose(obs, want)
            for p in proposals:
                if p.action is None or end_action_name(p.action) is not None or p.action in actions:
                    continue
                actions.append(p.action)
                texts.append(p.text)
        return actions[: self.config.k], texts[: self.config.k]

    def _step_seed(self, info: dict) -> int:
        """A seed from (config seed, sample, clicks so far): stable across runs and processes."""
        key = f"{self.config.seed}:{info.get('sample_index')}:{info.get('sample_id')}:{info.get('num_clicks')}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")

    def _done(self, action: Any, text: str, search: dict) -> Any:
        self.last_search = search
        scores = search.get("scores")
        suffix = "" if not scores else " | tree: " + " ".join(f"{s:.2f}" for s in scores)
        self.last_output = f"{text}{suffix}"
        return action


def _overlay_key(obs: dict) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(obs["overlay"]).tobytes()).digest()


@contextlib.contextmanager
def _seeded_torch(seed: int, device: Any = None) -> Iterator[None]:
    """Seed torch's global RNG for the block and restore it afterwards (HF ``generate`` samples
    from the global generator and takes none of its own)."""
    import torch

    devices = [device] if device is not None and getattr(device, "type", str(device)) == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def make_tree_search_agent(model: Optional[str] = None, k: int = 4, temperature: float = 1.0,
                           prm_model: Optional[str] = None, stop_margin: float = 0.0, seed: int = 0,
                           dtype: str = "auto", stop_when_no_gain: bool = True,
                           prm_readout: str = "greedy", proposals: str = "sample",
                           tie_margin: float = 0.0) -> TreeSearchAgent:
    """The agent the benchmark CLI builds (``--agent tree``): the tiny shipped policy by default."""
    from .mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from .registry import DEFAULT_TINY_CHECKPOINT

    policy = MLLMPolicy(MLLMPolicyConfig(model_path=str(model or DEFAULT_TINY_CHECKPOINT), do_sample=True,
                                         temperature=temperature, dtype=dtype))
    prm = PRM.from_checkpoint(prm_model, dtype=dtype, readout=prm_readout) if prm_model else None
    return TreeSearchAgent(policy, prm, TreeSearchConfig(k=k, stop_margin=stop_margin, seed=seed,
                                                         stop_when_no_gain=stop_when_no_gain, prm_readout=prm_readout,
                                                         proposals=proposals, tie_margin=tie_margin))


__all__ = ["SearchStats", "TreeSearchAgent", "TreeSearchConfig", "make_tree_search_agent"]
