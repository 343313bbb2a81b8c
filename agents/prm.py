"""The process reward model (PRM): a policy's own prediction of the IoU of the mask it sees.

Why it exists: SegAgent's answer starts with ``Current IOU: NN`` (0-100) before the action
(docs/conventions.md#action-text). That line is the process reward the paper builds on: PRM-guided
tree search (paper Alg. 2, sec. 4.4) scores each of K candidate masks with it and keeps the best,
and annotation filtering (paper E.1 / Tab. 3, ``benchmarks/prm_filtering.py``) keeps the masks
whose predicted IoU clears a threshold. :class:`PRM` turns any policy that writes the line into
``score(obs) -> IoU in [0, 1]``.

* ``score_many(observations)`` answers K observations with ONE batched, greedy ``generate`` call
  (left-padded prompts: captions may differ in length), so tree search pays one model call per
  step, not K.
* The line is read by :func:`agents.mllm.prompt.parse_action_text` (the one answer grammar). A
  missing, unreadable or out-of-range line scores NaN, never an exception; the count is kept in
  ``n_unparsable`` and the texts in ``last_texts``.
* The model is either a loaded :class:`agents.mllm.policy.MLLMPolicy` (the acting policy judges
  its own masks, as in the paper) or a separate reward-model checkpoint:
  :meth:`PRM.from_checkpoint` loads a LOCAL folder exactly as the policy does (hub ids are
  refused with :class:`agents.mllm.policy.LocalCheckpointError`, which says how to download).
* Anything else that can answer a batch of observations plugs in through
  :class:`AnswerSource` (``answer_texts(observations) -> list[str]``, one call per batch).

Importing this module needs no torch; the model call imports it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from .mllm.prompt import ActionFormat, ParsedAction, parse_action_text

log = logging.getLogger(__name__)

Observation = Mapping[str, Any]  # segenv's observation: overlay uint8 SxSx3, text str, ...


@runtime_checkable
class AnswerSource(Protocol):
    """Anything that answers a batch of observations in one call (a stub, a server, a policy)."""

    def answer_texts(self, observations: Sequence[Observation]) -> list[str]:
        """One answer text per observation, in order."""
        ...


class MLLMAnswers:
    """Greedy answers of an :class:`~agents.mllm.policy.MLLMPolicy` for a batch, in ONE ``generate``.

    Uses the policy's public pieces (``messages``, ``processor``, ``model``, ``decode``), so the
    prompt is exactly the one the policy acts on. Prompts are padded on the left (decoder-only
    generation continues from the last column); a tokenizer without a pad token falls back to one
    call per observation (logged once).

    Args:
        policy: a loaded ``MLLMPolicy``.
        max_new_tokens: generation budget (None = the policy's ``max_new_tokens``); the IoU line
            comes first, so a small budget reads the reward without the action.
    """

    def __init__(self, policy: Any, max_new_tokens: Optional[int] = None) -> None:
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 or None, got {max_new_tokens}")
        self.policy = policy
        self.max_new_tokens = int(max_new_tokens or policy.config.max_new_tokens)
        self.generate_calls = 0  # model.generate calls made (one per batch)
        tok = policy.tokenizer
        self._pad_id = tok.pad_token_id
        self._warned_no_pad = False

    def answer_texts(self, observations: Sequence[Observation]) -> list[str]:
        if len(observations) == 0:
            return []
        if self._pad_id is None and len(observations) > 1:
            if not self._warned_no_pad:
                log.warning("the tokenizer has no pad token: PRM scores one observation per generate call")
                self._warned_no_pad = True
            return [text for obs in observations for text in self._generate([obs])]
        return self._generate(list(observations))

    def _inputs(self, observations: Sequence[Observation]) -> dict:
        """Processor tensors for the batch (left-padded), on the model's device and dtype."""
        from PIL import Image

        p = self.policy
        to_image = getattr(p, "overlay_image", None) or (
            lambda obs: Image.fromarray(np.asarray(obs["overlay"], dtype=np.uint8)).convert("RGB"))
        texts = [
            p.processor.apply_chat_template(p.messages(str(obs["text"])), add_generation_prompt=True, tokenize=False)
            for obs in observations
        ]
        images = [[to_image(obs)] for obs in observations]
        kwargs: dict[str, Any] = {"padding": True, "padding_side": "left"} if len(observations) > 1 else {}
        inputs = p.processor(text=texts, images=images, return_tensors="pt", **kwargs)
        return {
            k: (v.to(p.device, dtype=p.dtype) if v.is_floating_point() else v.to(p.device))
            for k, v in inputs.items()
            if hasattr(v, "to")
        }

    def _generate(self, observations: Sequence[Observation]) -> list[str]:
        import torch

        p = self.policy
        inputs = self._inputs(observations)
        pad = self._pad_id if self._pad_id is not None else p.tokenizer.eos_token_id
        with torch.inference_mode():
            out = p.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                temperature=None,  # silence sampling defaults a generation_config may carry
                top_p=None,
                top_k=None,
                pad_token_id=pad,
            )
        self.generate_calls += 1
        prompt_len = inputs["input_ids"].shape[1]
        return [p.decode(row[prompt_len:]) for row in out]


class PRM:
    """Predicted IoU of the current mask from a policy's ``Current IOU`` line.

    Args:
        source: an ``MLLMPolicy`` (wrapped in :class:`MLLMAnswers`) or any :class:`AnswerSource`.
        action_format: the grammar the answers are parsed with (None = the policy's, else the
            default); only the IoU line is read, which every format writes alike.
        max_new_tokens: for a policy source: the generation budget (None = the policy's).

    Attributes after each call: ``last_texts`` (the answers), ``last_parsed``
    (:class:`~agents.mllm.prompt.ParsedAction` each: tree search can reuse the action);
    running totals ``n_scored`` and ``n_unparsable`` (answers without a readable IoU line).
    """

    def __init__(self, source: Any, action_format: Optional[ActionFormat] = None, max_new_tokens: Optional[int] = None) -> None:
        if isinstance(source, AnswerSource):
            self.source = source
        elif all(hasattr(source, a) for a in ("model", "processor", "messages", "decode")):
            self.source = MLLMAnswers(source, max_new_tokens)
        else:
            raise TypeError(
                f"PRM needs an MLLMPolicy or an object with answer_texts(observations) -> list[str], "
                f"got {type(source).__name__}"
            )
        self.action_format = action_format or getattr(source, "action_format", None) or ActionFormat()
        self.last_texts: list[str] = []
        self.last_parsed: list[ParsedAction] = []
        self.n_scored = 0
        self.n_unparsable = 0

    @classmethod
    def from_checkpoint(cls, path: "str | Path", device: str = "auto", dtype: str = "auto", **config: Any) -> "PRM":
        """A PRM over a separate reward-model checkpoint: a LOCAL folder, loaded like the policy.

        ``config`` goes to :class:`~agents.mllm.policy.MLLMPolicyConfig` (``prompt_style``,
        ``action_format``, ``max_new_tokens``, ...). A hub id or a folder without ``config.json``
        raises :class:`~agents.mllm.policy.LocalCheckpointError` saying what to do.
        """
        from .mllm.policy import MLLMPolicy, MLLMPolicyConfig

        return cls(MLLMPolicy(MLLMPolicyConfig(model_path=str(path), device=device, dtype=dtype, **config)))

    def score(self, obs: Observation) -> float:
        """The predicted IoU of ``obs``'s mask, a fraction in [0, 1]; NaN when the answer has no
        readable ``Current IOU`` line."""
        return self.score_many([obs])[0]

    def score_many(self, observations: Sequence[Observation]) -> list[float]:
        """Predicted IoUs of K observations from ONE batched model call (NaN where unreadable)."""
        observations = list(observations)
        texts = self.source.answer_texts(observations)
        if len(texts) != len(observations):
            raise RuntimeError(f"the answer source returned {len(texts)} texts for {len(observations)} observations")
        parsed = [parse_action_text(t, self.action_format) for t in texts]
        scores = [math.nan if p.iou is None else float(p.iou) for p in parsed]
        unreadable = sum(math.isnan(s) for s in scores)
        if unreadable:
            log.debug("%d of %d answers carry no readable 'Current IOU' line, e.g. %r", unreadable, len(texts),
                      next(t for t, s in zip(texts, scores) if math.isnan(s)))
        self.last_texts, self.last_parsed = list(texts), parsed
        self.n_scored += len(scores)
        self.n_unparsable += unreadable
        return scores


def stated_ious(trajectories: Sequence[Any], action_format: Optional[ActionFormat] = None) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted, true)`` IoU pairs of every step whose answer states a ``Current IOU`` line.

    ``trajectories``: :class:`segenv.rollout.Trajectory` objects (or their ``to_dict`` form). The
    true IoU of step ``k`` is the IoU of the mask the agent saw: the episode's initial IoU for the
    first step, else the IoU after step ``k - 1``. Both arrays are fractions in [0, 1].
    """
    fmt = action_format or ActionFormat()
    pred: list[float] = []
    true: list[float] = []
    for t in trajectories:
        d = t if isinstance(t, Mapping) else t.to_dict()
        before = float(d["initial_iou"])
        for step in d["steps"]:
            text = step.get("output")
            iou = parse_action_text(text, fmt).iou if text else None
            if iou is not None:
                pred.append(float(iou))
                true.append(before)
            before = float(step["iou"])
    return np.asarray(pred, np.float64), np.asarray(true, np.float64)


__all__ = ["AnswerSource", "MLLMAnswers", "Observation", "PRM", "stated_ious"]
