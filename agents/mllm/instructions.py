"""The instructions the policy reads each step: the prompt texts and :func:`build_prompt`.

The answer grammar (rendering and parsing the action text) is :mod:`agents.mllm.prompt`.
"""

from __future__ import annotations

from typing import Optional

PROMPT_STYLES = ("llava", "qwen", "short")
QWEN_SYSTEM = "You are a helpful assistant."
QWEN_PROMPT = (
    "Please optimize the semi-transparent {color} mask in a point-wise manner based on the image and "
    "description content, so that it covers the target object as accurately as possible. "
    "The object description is as follows:<ref>{caption}</ref>"
)
# SegAgent paper, supplementary Fig. 6 ("Prompt Design for SegAgent"), as plain text.
LLAVA_PROMPT = (
    "You are a highly skilled segmentation annotator. We have provided you with an image and an "
    "initial mask marked by a semi-transparent {color} mask that roughly covers the object described "
    "below. Your task is to refine this mask to make it as accurate as possible. Based on the given "
    "image and the mask, perform the following actions:\n"
    "1. Positive Point (x, y): Add a positive point if any part of the object is not covered by the "
    "mask. This will expand the mask to include the missing area. Example: Add a positive point on "
    "any corner or edge of the object that the mask does not cover.\n"
    "2. Negative Point (x, y): Add a negative point if an area outside the object is incorrectly "
    "included in the mask. This will refine the mask by excluding unnecessary regions. Example: Add "
    "a negative point where the mask extends into the background or any non-object area.\n"
    "{options}"
    "The description of the object is as follows: {caption}"
)
# The end options, in our own words (SegAgent's finish prompt and mask-module prompt offer them).
LLAVA_END_OPTIONS = {
    "finish": "Finish: Answer Finish when the mask already covers the object as well as you can "
    "make it. This ends the refinement and keeps the mask.",
    "no_object": "No Object Found: Answer No Object Found when nothing in the image matches the "
    "description. This ends the task with an empty mask.",
}
QWEN_END_OPTIONS = {
    "finish": "Answer Finish once the mask cannot be improved any further.",
    "no_object": "Answer No Object Found if nothing in the image matches the description.",
}


def build_prompt(
    caption: str, style: str = "llava", color: str = "green", *, finish: bool = False, no_object: bool = False
) -> tuple[Optional[str], str]:
    """``(system message or None, user text)`` for one step.

    ``"llava"``: the paper's Fig. 6 prompt, no system message. ``"qwen"``: the short Qwen prompt
    with the caption in ``<ref>..</ref>`` and the system message "You are a helpful assistant.".
    ``"short"``: the caption alone, no system message (the tiny pointer model's prompt: its
    word-level vocabulary has no instructions). ``color`` names the overlay colour (paper Tab. 4).
    ``finish`` / ``no_object`` offer the end answers ``Finish`` / ``No Object Found`` (as
    numbered options 3 and 4 in the LLaVA prompt, one sentence each in the Qwen prompt; the
    short prompt stays the caption). Without them the prompts are exactly the released ones.
    """
    caption = " ".join(str(caption).split())
    ends = [k for k, on in (("finish", finish), ("no_object", no_object)) if on]
    if style == "llava":
        options = "".join(f"{3 + i}. {LLAVA_END_OPTIONS[k]}\n" for i, k in enumerate(ends))
        text = LLAVA_PROMPT.format(color=color, caption=caption, options=options)
        if not text.endswith((".", "!", "?")):
            text += "."
        return None, text
    if style == "qwen":
        text = QWEN_PROMPT.format(color=color, caption=caption)
        if ends:
            head, tail = text.split(" The object description", 1)
            text = " ".join([head, *(QWEN_END_OPTIONS[k] for k in ends)]) + " The object description" + tail
        return QWEN_SYSTEM, text
    if style == "short":
        return None, caption
    raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")


__all__ = ["LLAVA_PROMPT", "PROMPT_STYLES", "QWEN_PROMPT", "QWEN_SYSTEM", "build_prompt"]
