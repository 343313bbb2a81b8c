"""The MLLM policy: prompts and action text (``prompt``), the policy over any local
image-text-to-text checkpoint (``policy``), tiny stock checkpoints for tests (``stock_tiny``).

``policy`` imports torch/transformers only when a model loads, so this import stays light.
The tiny pointer VLM (``tiny``: config and model; ``tiny_build``: tokenizer, processor, builder)
needs torch, so its names are re-exported lazily: ``from agents.mllm import build_tiny_vlm``
imports it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .policy import (
    LocalCheckpointError,
    MLLMPolicy,
    MLLMPolicyConfig,
    check_local_checkpoint,
    load_model_and_processor,
    register_custom_models,
)
from .prompt import (
    ActionFormat,
    ParsedAction,
    build_prompt,
    parse_action_text,
    parse_box_text,
    render_action,
    render_box,
)
from .stock_tiny import build_tiny_idefics3, build_tiny_llava

__all__ = [
    "ActionFormat",
    "LocalCheckpointError",
    "MLLMPolicy",
    "MLLMPolicyConfig",
    "ParsedAction",
    "build_prompt",
    "build_tiny_idefics3",
    "build_tiny_llava",
    "check_local_checkpoint",
    "load_model_and_processor",
    "parse_action_text",
    "parse_box_text",
    "register_custom_models",
    "render_action",
    "render_box",
]


_LAZY = {
    "TinySegConfig": "tiny",
    "TinySegForClicks": "tiny",
    "build_processor": "tiny_build",
    "build_tiny_vlm": "tiny_build",
    "build_tokenizer": "tiny_build",
}


def __getattr__(name: str) -> Any:
    """The tiny VLM's names, imported on first use (they need torch)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
