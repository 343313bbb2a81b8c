"""Interactive segmenters behind one protocol (see :mod:`segenv.segmenters.base`).

Backends that need torch are registered with lazy factories, so ``import segenv`` stays light.
"""

from .base import Prompt, Segmenter, SegmenterBase, make_segmenter, register_segmenter, segmenter_names
from .grabcut import GrabCutSegmenter


@register_segmenter("sam")
def _build_sam(**kwargs) -> Segmenter:
    from .sam import SamSegmenter

    return SamSegmenter(**kwargs)


@register_segmenter("clicknet")
def _build_clicknet(**kwargs) -> Segmenter:
    from .clicknet import ClickNetSegmenter

    return ClickNetSegmenter(**kwargs)


@register_segmenter("hf")
def _build_hf(**kwargs) -> Segmenter:
    from .hf_sam import HFSamSegmenter

    return HFSamSegmenter(**kwargs)


__all__ = ["Prompt", "Segmenter", "SegmenterBase", "GrabCutSegmenter", "make_segmenter", "register_segmenter", "segmenter_names"]
