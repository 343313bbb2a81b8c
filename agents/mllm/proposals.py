"""Distinct candidate actions by beam search over the action, the policy's IoU line kept.

Why: tree search (``agents.tree_search``) needs K *different* clicks to choose among. Sampling K
answers at temperature T mostly repeats the top cell (1.1-1.9 distinct clicks of 4 for the tiny
policy at T = 1; hotter sampling adds distinct clicks but worse ones, docs/benchmarks.md). Beam
search returns the K most likely answers instead, so every candidate is one the model rates
highly and they differ by construction.

A plain beam search over the whole answer would spend its beams on the ``Current IOU`` line
(``Current IOU: 57`` and ``Current IOU: 58`` before the same click are two beams). So the answer
is decoded greedily up to where the action may begin (:func:`agents.mllm.prompt.action_may_begin`:
after the IoU line), and the beams search only the action after that fixed prefix. Two
``generate`` calls per observation; deterministic (no sampling, no RNG).
"""

from __future__ import annotations

from typing import Any, Optional

from segenv.actions import end_action_name

from .prompt import ParsedAction, action_may_begin, parse_action_text

PROPOSAL_METHODS = ("sample", "beam")


def action_start(policy: Any, new_ids: list[int]) -> Optional[int]:
    """The number of leading answer tokens before the action may begin (0 for a format without an
    IoU line), or None when the answer never reaches that point (malformed or truncated)."""
    iou_line = bool(policy.action_format.iou_line)
    for j in range(len(new_ids) + 1):
        if action_may_begin(policy._decode_unstripped(new_ids[:j]), iou_line):
            return j
    return None


def beam_proposals(policy: Any, obs: dict, k: int, include_invalid: bool = False,
                   beams_per_candidate: int = 2, clicks_only: bool = False) -> list[ParsedAction]:
    """Up to ``k`` distinct actions, most likely first (an ``MLLMPolicy``'s ``propose(method="beam")``).

    ``k * beams_per_candidate`` beams are searched (duplicates and unparsable answers are dropped,
    so a few spare beams keep the list full); with ``include_invalid`` distinct unparsable answers
    fill the remaining places (last). An answer that never reaches the action (no IoU line) is
    returned as the greedy answer alone. ``clicks_only`` bans ``Finish`` / ``No Object Found``
    in the beams (the greedy prefix is not affected: it is only the IoU line).
    """
    import torch

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if beams_per_candidate < 1:
        raise ValueError(f"beams_per_candidate must be >= 1, got {beams_per_candidate}")
    inputs = policy.build_inputs(obs)
    prompt_len = inputs["input_ids"].shape[1]
    processors = ([policy._no_object_processor(inputs, policy.config.no_object_bias)]
                  if policy._no_object_id is not None else [])
    with torch.inference_mode():
        greedy = policy.model.generate(**inputs, **policy._generate_kwargs(1, False), logits_processor=list(processors))
    new = greedy[0, prompt_len:].tolist()
    start = action_start(policy, new)
    budget = policy.config.max_new_tokens - (start or 0)
    if start is None or budget < 1:
        parsed = parse_action_text(policy.decode(new), policy.action_format)
        policy.last_outputs = [parsed.text]
        keep = (parsed.ok and not (clicks_only and end_action_name(parsed.action) is not None)) or (
            include_invalid and not parsed.ok)
        return [parsed] if keep else []
    prefix = greedy[:, : prompt_len + start]
    mask = inputs.get("attention_mask")
    beams = k * beams_per_candidate
    beam_inputs = dict(inputs, input_ids=prefix)
    if mask is not None:
        beam_inputs["attention_mask"] = torch.cat([mask, mask.new_ones((1, start))], dim=1)
    kwargs = dict(policy._generate_kwargs(beams, False), num_beams=beams, max_new_tokens=budget)
    if clicks_only:
        kwargs["bad_words_ids"] = (kwargs.get("bad_words_ids") or []) + policy._end_answer_ids()
    with torch.inference_mode():
        out = policy.model.generate(**beam_inputs, **kwargs, logits_processor=list(processors))
    valid: dict[tuple, ParsedAction] = {}
    invalid: dict[str, ParsedAction] = {}
    policy.last_outputs = []
    for row in out:
        parsed = parse_action_text(policy.decode(row[prompt_len:]), policy.action_format)
        policy.last_outputs.append(parsed.text)
        if parsed.ok:
            valid.setdefault(parsed.key(), parsed)
        else:
            invalid.setdefault(parsed.text, parsed)
    found = list(valid.values())[:k]
    if include_invalid:
        found += list(invalid.values())[: k - len(found)]
    return found


__all__ = ["PROPOSAL_METHODS", "action_start", "beam_proposals"]
