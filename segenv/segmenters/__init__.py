"""Interactive segmenters behind one protocol (see :mod:`segenv.segmenters.base`).

Backends that need torch are registered with lazy factories, so ``import segenv`` stays light.

The SAM family is one adapter per model family over one shared flow:

* ``sam_common.py``: the shared SAM logic (resize into the input frame, coordinate scaling,
  multimask choice, previous logits, looped / batched ``predict_many``);
* ``sam.py`` (``sam:``): segment-anything ``.pth`` checkpoints (read by ``sam_checkpoint.py``);
* ``hf_sam.py`` (``hf:``): transformers folders; its ``HF_FAMILIES`` table maps ``config.json``'s
  ``model_type`` to an adapter: ``hf_sam1.py`` (SAM, SAM-HQ), ``hf_sam2.py`` (SAM 2 / 2.1).
  A new family is one more adapter module plus one row in that table.

Text segmenters (``text.py``: ``segment(image, text) -> TextMask``, no click) are a second, small
registry: ``sam3:`` is SAM 3's text-prompted ``Sam3Model`` (``hf_sam3_text.py``). They give the
env's ``initial_state="text"`` and the ``sam3-text`` baseline agent.
"""

from .base import (
    Prompt,
    Segmenter,
    SegmenterBase,
    make_segmenter,
    predict_batch,
    register_segmenter,
    segmenter_names,
    spawn_segmenters,
)
from .grabcut import GrabCutSegmenter
from .text import TextMask, TextSegmenter, make_text_segmenter, register_text_segmenter, text_segmenter_names


@register_segmenter("sam")
def _build_sam(**kwargs) -> Segmenter:
    from .sam import SamSegmenter

    return SamSegmenter(**kwargs)


@register_segmenter("clicknet")
def _build_clicknet(**kwargs) -> Segmenter:
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"segmenter 'clicknet' (the default of SegAgent-Shapes-v0) needs torch and safetensors ({exc}): "
            "pip install 'torch==2.13.0' 'segagent[sam]', or pass segmenter='grabcut' (no weights, no torch)"
        ) from exc
    from .clicknet import ClickNetSegmenter

    return ClickNetSegmenter(**kwargs)


@register_segmenter("hf")
def _build_hf(**kwargs) -> Segmenter:
    from .hf_sam import HFSamSegmenter

    return HFSamSegmenter(**kwargs)


__all__ = [
    "GrabCutSegmenter",
    "Prompt",
    "Segmenter",
    "SegmenterBase",
    "TextMask",
    "TextSegmenter",
    "make_segmenter",
    "make_text_segmenter",
    "predict_batch",
    "register_segmenter",
    "register_text_segmenter",
    "segmenter_names",
    "spawn_segmenters",
    "text_segmenter_names",
]
