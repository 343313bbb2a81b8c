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
* ``readout`` says how the number is read. ``"greedy"`` (default, as the paper reads it): the
  stated number, a 101-way argmax. ``"median"`` / ``"mean"``: a statistic of the model's
  distribution over the value tokens (one token per IoU 0..100, as the tiny model's binned head
  has) at the position where the greedy answer writes the number. The argmax throws away the
  model's uncertainty: on an unsure mask it states the top bin (often 90-100) even when half the
  mass lies far below. The median (the estimate with the least expected absolute error, bin ``k``
  taken as ``[k - 0.5, k + 0.5]``) keeps that and stays on the peak of a sure prediction; the mean
  is pulled below 100 by any tail. Measured in docs/tiny_vlm.md (filtering Pearson 0.891 -> 0.919
  on test for ``tiny_prm``). Both need one token per value: a tokenizer that writes ``57`` as
  ``5``, ``7`` is refused with a clear error (use ``"greedy"``).
* Anything else that can answer a batch of observations plugs in through
  :class:`AnswerSource` (``answer_texts(observations) -> list[str]``, one call per batch).

Importing this module needs no torch; the model call imports it.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from .mllm.prompt import ActionFormat, ParsedAction, parse_action_text

log = logging.getLogger(__name__)

Observation = Mapping[str, Any]  # segenv's observation: overlay uint8 SxSx3, text str, ...

READOUTS = ("greedy", "median", "mean")
_VALUE_TOKEN_RE = re.compile(r"^\s*(?:current\s*iou\s*[:=]?\s*)?(\d{1,3})\s*$", re.IGNORECASE)


def distribution_readout(probs: np.ndarray, readout: str) -> float:
    """The IoU (0..100) that ``readout`` reads from ``probs`` (101 probabilities of the values
    0..100, summing to 1): ``"mean"``, or ``"median"`` with bin ``k`` spread evenly over
    ``[k - 0.5, k + 0.5]`` (a sure prediction of ``k`` reads ``k``), clipped to [0, 100]."""
    probs = np.asarray(probs, np.float64)
    if probs.shape != (101,):
        raise ValueError(f"probs must have shape (101,), got {probs.shape}")
    if readout == "mean":
        return float(probs @ np.arange(101))
    if readout == "median":
        edges = np.arange(102) - 0.5
        cdf = np.concatenate([[0.0], np.cumsum(probs)])
        return float(np.clip(np.interp(0.5 * cdf[-1], cdf, edges), 0.0, 100.0))
    raise ValueError(f"readout must be 'mean' or 'median' here, got {readout!r}")


def iou_value_tokens(tokenizer: Any) -> dict[int, int]:
    """``{token id: IoU value 0..100}`` for every token that decodes to one value alone (``57``,
    `` 57``, the tiny model's ``Current IOU: 57\\n``). Raises ``ValueError`` unless every value
    0..100 has a token: a distribution over a partial set (digits only) would be wrong."""
    values: dict[int, int] = {}
    for token_id in range(len(tokenizer)):
        m = _VALUE_TOKEN_RE.match(tokenizer.decode([token_id]))
        if m is not None and int(m.group(1)) <= 100:
            values[token_id] = int(m.group(1))
    missing = sorted(set(range(101)) - set(values.values()))
    if missing:
        raise ValueError(
            f"readout 'median'/'mean' needs one token per IoU value 0..100; this tokenizer has none for "
            f"{len(missing)} values (e.g. {missing[:5]}): it writes numbers as several tokens. "
            f"Use readout='greedy' (the stated number)"
        )
    return values


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
        readout: ``"greedy"`` (the stated number), ``"median"`` or ``"mean"`` (module docstring);
            with the last two, ``last_readout`` holds ``(stated value, read value)`` per answer
            (None where the answer has no value token).
    """

    def __init__(self, policy: Any, max_new_tokens: Optional[int] = None, readout: str = "greedy") -> None:
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 or None, got {max_new_tokens}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        self.last_readout: list[Optional[tuple[int, float]]] = []
        self._value_ids: Any = None  # (token ids tensor, values tensor), built on first use
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
            self.last_readout = []
            return [text for obs in observations for text in self._generate([obs])]
        self.last_readout = []
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
        expected = self.readout != "greedy"
        if expected and self._value_ids is None:
            values = iou_value_tokens(p.tokenizer)
            self._value_ids = (torch.tensor(list(values)), torch.tensor(list(values.values()), dtype=torch.float64))
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
                output_logits=expected,
                return_dict_in_generate=True,
            )
        self.generate_calls += 1
        prompt_len = inputs["input_ids"].shape[1]
        sequences = getattr(out, "sequences", out)  # a ModelOutput; a bare tensor from a patched generate
        generated = sequences[:, prompt_len:]
        if expected:
            logits = getattr(out, "logits", None)
            self.last_readout.extend(
                self._read_values(generated, logits) if logits else [None] * len(generated))
        return [p.decode(row) for row in generated]

    def _read_values(self, generated: Any, logits: Sequence[Any]) -> list[Optional[tuple[int, float]]]:
        """Per row: (stated value, read value) at the first generated value token, or None."""
        import torch

        ids, values = self._value_ids
        lookup = dict(zip(ids.tolist(), values.tolist()))
        result: list[Optional[tuple[int, float]]] = []
        for row, tokens in enumerate(generated.tolist()):
            step = next((j for j, t in enumerate(tokens[: len(logits)]) if t in lookup), None)
            if step is None:
                result.append(None)
                continue
            probs = torch.softmax(logits[step][row].double()[ids.to(logits[step].device)].cpu(), dim=0)
            per_value = torch.zeros(101, dtype=torch.float64).index_add_(0, values.long(), probs)
            result.append((int(lookup[tokens[step]]), distribution_readout(per_value.numpy(), self.readout)))
        return result


class PRM:
    """Predicted IoU of the current mask from a policy's ``Current IOU`` line.

    Args:
        source: an ``MLLMPolicy`` (wrapped in :class:`MLLMAnswers`) or any :class:`AnswerSource`.
        action_format: the grammar the answers are parsed with (None = the policy's, else the
            default); only the IoU line is read, which every format writes alike.
        max_new_tokens: for a policy source: the generation budget (None = the policy's).
        readout: for a policy source: ``"greedy"`` (the stated number, as the paper reads it),
            ``"median"`` or ``"mean"`` of the model's distribution over the value tokens (module
            docstring). An answer whose stated number is not the value token read keeps the
            stated number.

    Attributes after each call: ``last_texts`` (the answers), ``last_parsed``
    (:class:`~agents.mllm.prompt.ParsedAction` each: tree search can reuse the action);
    running totals ``n_scored`` and ``n_unparsable`` (answers without a readable IoU line).
    """

    def __init__(self, source: Any, action_format: Optional[ActionFormat] = None, max_new_tokens: Optional[int] = None,
                 readout: str = "greedy") -> None:
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if isinstance(source, AnswerSource):
            if readout != "greedy" and not hasattr(source, "last_readout"):
                raise ValueError(f"readout={readout!r} needs a policy source (the model's logits); "
                                 f"{type(source).__name__} only answers texts")
            self.source = source
        elif all(hasattr(source, a) for a in ("model", "processor", "messages", "decode")):
            self.source = MLLMAnswers(source, max_new_tokens, readout=readout)
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
    def from_checkpoint(cls, path: "str | Path", device: str = "auto", dtype: str = "auto", readout: str = "greedy",
                        **config: Any) -> "PRM":
        """A PRM over a separate reward-model checkpoint: a LOCAL folder, loaded like the policy.

        ``readout``: see the class. ``config`` goes to :class:`~agents.mllm.policy.MLLMPolicyConfig` (``prompt_style``,
        ``action_format``, ``max_new_tokens``, ...). A hub id or a folder without ``config.json``
        raises :class:`~agents.mllm.policy.LocalCheckpointError` saying what to do.
        """
        from .mllm.policy import MLLMPolicy, MLLMPolicyConfig

        return cls(MLLMPolicy(MLLMPolicyConfig(model_path=str(path), device=device, dtype=dtype, **config)), readout=readout)

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
        read = list(getattr(self.source, "last_readout", None) or [])
        if len(read) == len(scores):
            for i, (p, e) in enumerate(zip(parsed, read)):
                # only where the value token read is the line's stated number (never a coordinate)
                if e is not None and p.iou is not None and round(p.iou * 100) == e[0]:
                    scores[i] = e[1] / 100.0
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


__all__ = ["AnswerSource", "MLLMAnswers", "Observation", "PRM", "READOUTS", "distribution_readout", "iou_value_tokens", "stated_ious"]
