"""The released SegAgent-Qwen checkpoint's own loop: Qwen-VL-Chat (v1) through its remote code.

Why a separate policy: the released checkpoint is a Qwen-VL-Chat fine-tune. It has no processor and
no chat template that transformers knows; it loads only with
``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`` (the model code ships in the
folder), takes the image as a FILE PATH inside the prompt text (``Picture 1: <img>PATH</img>``; its
tokenizer and model read the file) and answers ``Positive point: (y, x)`` with integers in
``[0, 1000)`` (docs/conventions.md#axis-order). Everything here follows ``../shared/REFERENCE.md``
section 4 (SegAgent's ``evaltools/model_loader.py`` / ``refcocog_eval.py``):

* the raw prompt ``<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n
  Picture 1: <img>{overlay.jpg}</img>\\n{instruction}<|im_end|>\\n<|im_start|>assistant\\n``, where
  the instruction is :data:`agents.mllm.instructions.QWEN_PROMPT` (caption inside ``<ref>``);
* the overlay saved as a JPEG at Pillow's default quality (a temporary file per step);
* greedy decoding, stopped at ``<|im_end|>``; the answer parsed by the one grammar
  (:func:`agents.mllm.prompt.parse_action_text`, ``ActionFormat("int1000", "yx")``).

**Remote code runs Python that ships with the checkpoint.** It is never on by default: the user
passes ``trust_remote_code=True`` (``--trust-remote-code``) for a folder they trust. A LoRA variant
(peft's ``AutoPeftModelForCausalLM``) is not handled here: merge it first.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .instructions import QWEN_PROMPT, QWEN_SYSTEM
from .prompt import ActionFormat, ParsedAction, parse_action_text

log = logging.getLogger(__name__)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def needs_remote_code(path: "str | Path") -> bool:
    """Whether the checkpoint folder declares its own model code (``auto_map`` in ``config.json``)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("auto_map"))


def released_prompt(caption: str, image_path: str, color: str = "green") -> str:
    """The released loop's raw prompt string for one step."""
    instruction = QWEN_PROMPT.format(color=color, caption=caption)
    return (f"{IM_START}system\n{QWEN_SYSTEM}{IM_END}\n{IM_START}user\nPicture 1: <img>{image_path}</img>\n"
            f"{instruction}{IM_END}\n{IM_START}assistant\n")


@dataclass
class QwenVLChatConfig:
    """Arguments of :class:`QwenVLChatPolicy`.

    Attributes:
        model_path: a LOCAL checkpoint folder with its remote code.
        trust_remote_code: must be True: the folder's Python code runs (module docstring).
        action_format: the released checkpoint's ``int1000`` in ``(y, x)`` order, with its IoU line.
        max_new_tokens: generation budget per answer.
        device, dtype: as :class:`agents.mllm.policy.MLLMPolicyConfig` (bf16 on CUDA).
        overlay_color: the colour word of the prompt.
    """

    model_path: str
    trust_remote_code: bool = False
    action_format: ActionFormat = field(default_factory=lambda: ActionFormat("int1000", "yx", iou_line=True))
    max_new_tokens: int = 64
    device: str = "auto"
    dtype: str = "auto"
    overlay_color: str = "green"


class QwenVLChatPolicy:
    """A Qwen-VL-Chat (v1) checkpoint as a segenv agent, exactly as SegAgent's released loop drives it."""

    needs_gt = False

    def __init__(self, config: QwenVLChatConfig) -> None:
        from .policy import check_local_checkpoint, resolve_device_dtype

        if not config.trust_remote_code:
            raise ValueError(
                f"{config.model_path} needs its own model code (a Qwen-VL-Chat checkpoint such as the released "
                "SegAgent-Qwen): loading it runs Python files that ship with the checkpoint. Pass "
                "--trust-remote-code (trust_remote_code=True) only for a folder you trust."
            )
        path = check_local_checkpoint(config.model_path)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, dtype = resolve_device_dtype(config.device, config.dtype)
        self.config = config
        self.action_format = config.action_format
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, local_files_only=True,
                                                          dtype=dtype).to(device).eval()
        self.device = device
        end = self.tokenizer.convert_tokens_to_ids(IM_END) if IM_END in self.tokenizer.get_vocab() else None
        self.im_end_id = getattr(self.tokenizer, "im_end_id", None) or end
        if self.im_end_id is None:
            raise ValueError(f"{path}: the tokenizer has no {IM_END} token; is this a Qwen-VL-Chat checkpoint?")
        self._tmp = tempfile.TemporaryDirectory(prefix="segagent-qwen-")
        self.last_output: Optional[str] = None
        self.last_parsed: Optional[ParsedAction] = None
        self.last_iou: Optional[float] = None
        self.last_prompt: Optional[str] = None

    def reset(self, obs: dict, info: dict) -> None:
        self.last_output, self.last_parsed, self.last_iou = None, None, None

    def act(self, obs: dict, info: dict) -> Any:
        """One greedy answer; None (an invalid step) when it does not parse."""
        import torch
        from PIL import Image

        image_path = os.path.join(self._tmp.name, "overlay.jpg")
        Image.fromarray(np.asarray(obs["overlay"], dtype=np.uint8)).convert("RGB").save(image_path, format="JPEG")
        prompt = released_prompt(str(obs["text"]), image_path, self.config.overlay_color)
        self.last_prompt = prompt
        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.im_end_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                      eos_token_id=self.im_end_id, pad_token_id=pad)
        new = [int(t) for t in out[0, inputs["input_ids"].shape[1]:]]
        if self.im_end_id in new:
            new = new[: new.index(self.im_end_id)]
        text = self.tokenizer.decode(new, skip_special_tokens=False).strip()
        parsed = parse_action_text(text, self.action_format)
        self.last_output, self.last_parsed, self.last_iou = text, parsed, parsed.iou
        return parsed.action

    def close(self) -> None:
        self._tmp.cleanup()


__all__ = ["QwenVLChatConfig", "QwenVLChatPolicy", "needs_remote_code", "released_prompt"]
