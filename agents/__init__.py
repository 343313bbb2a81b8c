"""agents: who acts in segenv: the click oracle, baselines, the MLLM policy and its training.

With the ``mllm`` extra installed (torch + transformers), ``import agents`` also registers the
shipped tiny VLM (:mod:`agents.mllm.tiny`) with transformers' Auto classes, so
``AutoModelForImageTextToText.from_pretrained(folder)`` (and ``AutoConfig`` / ``AutoProcessor``)
load its checkpoints like any stock one (``docs/tiny_vlm.md``). Without the extra nothing is
registered and the rest of the package works as before.
"""

import importlib.util

from .base import Agent, STOP
from .oracle import OracleAgent
from .baselines import RandomAgent

__all__ = ["Agent", "OracleAgent", "RandomAgent", "STOP"]


def _register_tiny_vlm() -> bool:
    """Import :mod:`agents.mllm.tiny` (its import registers the Auto classes) when torch and
    transformers are installed; return whether it did."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        return False
    from .mllm import tiny  # noqa: F401

    return True


_register_tiny_vlm()
