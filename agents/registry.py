"""Agents by name, for the benchmark CLI and scripts: ``make_agent("oracle", seed=0)``.

A builder takes keyword options (``seed``, ``model``, ``k``, ...) and ignores the ones it does
not use, so one CLI can build every agent. Register your own with :func:`register_agent`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from segenv.registry import Registry

AgentBuilder = Callable[..., Any]
#: Every agent by name (``segenv.registry.Registry``; a new registration replaces an old one).
AGENTS: Registry[Any] = Registry("agent")

#: The shipped tiny checkpoint (trained by this project on the procedural data).
DEFAULT_TINY_CHECKPOINT = Path(__file__).resolve().parent / "mllm" / "checkpoints" / "tiny"
# the PRM fine-tune of that policy (docs/tiny_vlm.md): a separate reward model for --prm-model
TINY_PRM_CHECKPOINT = DEFAULT_TINY_CHECKPOINT.parent / "tiny_prm"


def register_agent(name: str) -> Callable[[AgentBuilder], AgentBuilder]:
    """Decorator: make ``builder(**options)`` buildable by ``name``."""
    return AGENTS.register(name)


def make_agent(name: str, **options) -> Any:
    return AGENTS.build(name, **options)


def agent_names() -> list[str]:
    return AGENTS.names()


@register_agent("oracle")
def _oracle(seed: int = 0, tie_break: str = "first", finish_iou: "float | None" = None, **_: Any):
    from .oracle import OracleAgent

    return OracleAgent(tie_break=tie_break, seed=seed, finish_iou=finish_iou)


@register_agent("cell-oracle")
def _cell_oracle(grid: int = 14, **_: Any):
    """The oracle restricted to the centres of a ``grid x grid`` cell grid (the shipped tiny model's
    pointer is 14x14): the ceiling of a policy that can only click cell centres, with perfect labels."""
    from .training.tiny_cells import CellOracle

    return CellOracle(grid)


@register_agent("random")
def _random(seed: int = 0, **_: Any):
    from .baselines import RandomAgent

    return RandomAgent(seed=seed)


@register_agent("sam3-text")
def _sam3_text(model: "str | None" = None, text_segmenter: "str | None" = None, **_: Any):
    """SAM 3's text model alone, no click: ``--agent sam3-text --model /path/to/sam3`` (or
    ``--text-segmenter sam3:/path``)."""
    from .baselines import TextOnlyAgent

    spec = text_segmenter or (f"sam3:{model}" if model else None)
    if not spec:
        raise ValueError("--agent sam3-text needs SAM 3's text model: --model /path/to/sam3 (a local folder of "
                         "model_type 'sam3') or --text-segmenter sam3:/path/to/sam3")
    return TextOnlyAgent(text_segmenter=spec)


@register_agent("scripted")
def _scripted(seed: int = 0, **_: Any):
    from .scripted import ScriptedShapesAgent

    return ScriptedShapesAgent()


@register_agent("mllm")
def _mllm(model: "str | None" = None, temperature: float = 0.0, allow_end: bool = True, dtype: str = "auto",
          overlay_format: str = "png", trust_remote_code: bool = False, no_object_bias: float = 0.0,
          iou_readout: str = "greedy", **_: Any):
    """An image-text-to-text checkpoint (default: the shipped tiny model); ``no_object_bias`` and
    ``iou_readout`` are :class:`agents.mllm.policy.MLLMPolicyConfig`'s (``--no-object-bias``, issue #21;
    ``--iou-readout``)."""
    from .mllm.policy import MLLMPolicy, MLLMPolicyConfig, check_no_object_bias
    from .mllm.qwen_vl_chat import QwenVLChatConfig, QwenVLChatPolicy, needs_remote_code

    path = str(model or DEFAULT_TINY_CHECKPOINT)
    no_object_bias = check_no_object_bias(no_object_bias)
    if needs_remote_code(path):  # e.g. the released SegAgent-Qwen (Qwen-VL-Chat): its own code and loop
        if temperature > 0:
            raise ValueError("the Qwen-VL-Chat loop decodes greedily, as SegAgent's released evaluation")
        if no_object_bias != 0.0:
            raise ValueError("--no-object-bias is not supported by the Qwen-VL-Chat loop (its own generate)")
        if iou_readout != "greedy":
            raise ValueError("--iou-readout is not supported by the Qwen-VL-Chat loop (its own generate)")
        return QwenVLChatPolicy(QwenVLChatConfig(model_path=path, trust_remote_code=trust_remote_code, dtype=dtype))
    return MLLMPolicy(MLLMPolicyConfig(model_path=path, do_sample=temperature > 0, temperature=temperature or 1.0,
                                       allow_end=allow_end, dtype=dtype, overlay_format=overlay_format,
                                       no_object_bias=no_object_bias, iou_readout=iou_readout))


@register_agent("tree")
def _tree(model: "str | None" = None, temperature: float = 0.0, seed: int = 0, search_k: int = 4,
          search_margin: float = 0.0, search_stop: bool = True, prm_model: "str | None" = None, dtype: str = "auto",
          prm_readout: str = "greedy", search_proposals: str = "sample",
          search_tie_margin: float = 0.0, **_: Any):
    """PRM-guided tree search over an MLLM policy (agents.tree_search): ``--agent tree --search-k 4``;
    ``--temperature`` is the proposals' (0 = 1.0), ``--prm-model`` a separate reward model,
    ``--prm-readout`` how its IoU line is read (agents.prm.PRM), ``--search-proposals`` how the
    candidates are drawn (sample or beam), ``--search-tie-margin`` how much better than a more
    likely candidate another must score to be taken."""
    from .tree_search import make_tree_search_agent

    return make_tree_search_agent(model, k=search_k, temperature=temperature or 1.0, prm_model=prm_model,
                                  stop_margin=search_margin, seed=seed, dtype=dtype, stop_when_no_gain=search_stop,
                                  prm_readout=prm_readout, proposals=search_proposals,
                                  tie_margin=search_tie_margin)


@register_agent("sb3")
def _sb3(model: "str | None" = None, temperature: float = 0.0, seed: int = 0, **_: Any):
    """A stable-baselines3 model from ``benchmarks/train_rl.py``: ``--agent sb3 --model RUN/model.zip``
    (its ``args.json`` beside it says how to rebuild the observation); ``--temperature 1`` samples
    from the policy instead of taking its argmax."""
    from .rl import make_sb3_agent

    return make_sb3_agent(model, temperature=temperature, seed=seed)
