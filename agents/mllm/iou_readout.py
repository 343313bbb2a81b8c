"""Decoding the ``Current IOU`` number by a statistic of its distribution, not the argmax.

Why: the answer is ``Current IOU: NN`` then the action, and the action is decoded AFTER the
number, so it is conditioned on it. Greedy decoding writes the top bin. On a mask the model is
unsure of (the distribution split between, say, 45 and 99) the top bin is often 95-100, and the
action that follows a stated 99 is ``Finish``: the policy stops on a mask it half knows is wrong.
:mod:`agents.prm` already reads such masks better by the distribution's median (the estimate with
the least expected absolute error; filtering Pearson 0.891 -> 0.919 for ``tiny_prm``).
:attr:`MLLMPolicyConfig.iou_readout` (``"median"`` / ``"mean"``) makes the policy WRITE that
number, so its own action follows the better estimate. The action distribution itself is the
model's own; only the number it conditions on changes.

It needs one token per IoU value 0..100 (the tiny model's binned head); a tokenizer that writes
``57`` as ``5``, ``7`` is refused at construction (:func:`agents.prm.iou_value_tokens`).
"""

from __future__ import annotations

from typing import Any

IOU_READOUTS = ("greedy", "median", "mean")


def check_iou_readout(value: Any) -> str:
    """``value`` if it is one of :data:`IOU_READOUTS`, else a ``ValueError`` naming them."""
    if value not in IOU_READOUTS:
        raise ValueError(f"iou_readout must be one of {IOU_READOUTS}, got {value!r}")
    return str(value)


def _iou_readout_processor_class() -> type:
    """:class:`IouReadout` is built on first use so that importing this module needs no torch."""
    import torch
    from transformers import LogitsProcessor

    from ..prm import distribution_readout

    class IouReadout(LogitsProcessor):
        """At the first position of each row where the top-scoring token is an IoU value token,
        keep only the value token that ``readout`` reads from the value tokens' softmax (of
        that value's spellings, the best-scoring one).

        ``value_tokens``: token id -> IoU value (0..100). ``prompt_length``: where the answer
        starts in ``input_ids``. Rows that already wrote a value token are left alone (the
        ``<loc_k>`` or other tokens after it are never touched). ``stated``: per row, the value
        written (None until then).
        """

        def __init__(self, value_tokens: dict[int, int], readout: str, prompt_length: int) -> None:
            self.readout = check_iou_readout(readout)
            self.ids = torch.tensor(list(value_tokens), dtype=torch.long)
            self.values = torch.tensor(list(value_tokens.values()), dtype=torch.long)
            self.prompt_length = prompt_length
            self.stated: list[Any] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if not self.stated:
                self.stated = [None] * input_ids.shape[0]
            ids = self.ids.to(scores.device)
            generated = input_ids[:, self.prompt_length:]
            written = torch.isin(generated, ids).any(dim=1) if generated.shape[1] else torch.zeros(
                input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            at_value = torch.isin(scores.argmax(dim=-1), ids) & ~written
            rows = at_value.nonzero().flatten().tolist()
            if not rows:
                return scores
            scores = scores.clone()
            for r in rows:
                probs = torch.softmax(scores[r, ids].double(), dim=0).cpu()
                per_value = torch.zeros(101, dtype=torch.float64).index_add_(0, self.values, probs)
                value = int(round(distribution_readout(per_value.numpy(), self.readout)))
                # the value's best-scoring spelling (a tokenizer may have `57` and ` 57`)
                candidates = ids[self.values.to(ids.device) == value]
                keep = int(candidates[scores[r, candidates].argmax()])
                self.stated[r] = value
                kept = scores[r, keep].clone()
                scores[r] = -float("inf")
                scores[r, keep] = kept
            return scores

    return IouReadout
