"""The MLLM policy: prompts and action text (``prompt``), the policy over any local
image-text-to-text checkpoint (``policy``), tiny stock checkpoints for tests (``stock_tiny``).

``policy`` imports torch/transformers only when a model loads, so this import stays light.
Names of ``agents.mllm.tiny`` (the tiny pointer VLM, written separately) are re-exported lazily
when that module exists: ``from agents.mllm import X`` imports it on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
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


def _tiny_module():
    if importlib.util.find_spec(f"{__name__}.tiny") is None:
        return None
    return importlib.import_module(f"{__name__}.tiny")


def __getattr__(name: str) -> Any:
    """``from .tiny import ...`` on demand, only if ``agents/mllm/tiny.py`` exists."""
    if name.startswith("__"):
        raise AttributeError(name)
    tiny = _tiny_module()
    if tiny is not None and name in getattr(tiny, "__all__", [n for n in dir(tiny) if not n.startswith("_")]):
        return getattr(tiny, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
