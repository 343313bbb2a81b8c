"""The ``No Object Found`` logit bias of :class:`agents.mllm.policy.MLLMPolicy` (issue #21): the
value check, the answer's first token, and the logits processor that adds the bias and records the
model's margin for that answer (``no_object_margin``)."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .prompt import NO_OBJECT_TEXT, action_may_begin


def check_no_object_bias(value: Any) -> float:
    """``value`` as a finite float, or a ``ValueError`` saying what a ``no_object_bias`` must be
    (NaN would silently disable the answer, an infinity would force or ban it everywhere)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"no_object_bias must be a finite number (a logit bias), got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"no_object_bias must be a finite number (a logit bias), got {value!r}")
    return float(value)


def _no_object_token_id(tokenizer: Any) -> int:
    """The first token of ``No Object Found`` as the answer writes it (at the start of its line)."""
    ids = [int(t) for t in tokenizer(NO_OBJECT_TEXT, add_special_tokens=False)["input_ids"]]
    unk = getattr(tokenizer, "unk_token_id", None)
    if not ids or ids[0] == unk:
        raise ValueError(f"the tokenizer cannot write {NO_OBJECT_TEXT!r} (got ids {ids}): no_object_bias needs it")
    return ids[0]


def _no_object_processor_class() -> type:
    """:class:`NoObjectBias` is built on first use so that importing this module needs no transformers."""
    from transformers import LogitsProcessor

    class NoObjectBias(LogitsProcessor):
        """Adds ``bias`` to ``token_id``'s score in the rows whose answer so far lets an action begin.

        It also records, per row, the first such position's margin before the bias: the token's
        score minus the best other score (the greedy choice is ``No Object Found`` iff
        ``margin + bias > 0``). Which rows: the generated text so far (``input_ids`` after
        ``prompt_length``, EOS / padding removed, as :meth:`MLLMPolicy.decode` reads it, whitespace kept) passes
        :func:`agents.mllm.prompt.action_may_begin`; decoding text, not matching token ids, makes
        it work for any tokenizer.
        """

        def __init__(self, token_id: int, bias: float, prompt_length: int, decode: Any, iou_line: bool) -> None:
            self.token_id, self.bias, self.prompt_length = token_id, float(bias), prompt_length
            self.decode, self.iou_line = decode, iou_line
            self.margins: list[Optional[float]] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if not self.margins:
                self.margins = [None] * input_ids.shape[0]
            rows = [r for r in range(input_ids.shape[0])
                    if action_may_begin(self.decode(input_ids[r, self.prompt_length:]), self.iou_line)]
            for r in rows:
                if self.margins[r] is None:
                    others = scores[r].clone()
                    others[self.token_id] = -float("inf")
                    self.margins[r] = float(scores[r, self.token_id] - others.max())
            if rows and self.bias != 0.0:
                scores = scores.clone()
                scores[rows, self.token_id] += self.bias
            return scores

    return NoObjectBias
