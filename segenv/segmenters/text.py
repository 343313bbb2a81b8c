"""Text-prompted segmenters: a referring expression in, one mask out, no click.

A click segmenter (:mod:`.base`) answers clicks and boxes; a text segmenter answers the sentence
itself. Two things stand on it: the zero-click baseline agent (``--agent sam3-text``, the number
a clicking agent is compared with) and the env's ``initial_state="text"`` (an episode that starts
from the text model's mask, a row of the paper's initial-action ablation, Tab. 5).

Protocol: ``segment(image, text) -> TextMask``, with ``image`` HxWx3 uint8 RGB at the sample's
original size. A model that finds several instances of the phrase answers ONE of them, by one
rule for every backend (:func:`pick_instance`): the highest-scoring instance whose score reaches
``threshold``; when none does, the answer is an empty mask (``num_instances == 0``), which the
env and the harness record as such (on a no-target item that is the right answer).

Backends register with :func:`register_text_segmenter` and are built by
:func:`make_text_segmenter` from ``"name:/path"`` (``"sam3:/models/sam3"``); instances pass through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..registry import Registry


@dataclass(frozen=True)
class TextMask:
    """A text segmenter's answer.

    Attributes:
        mask: HxW bool at the image's size (all False when no instance reached the threshold).
        score: the chosen instance's score in [0, 1]; the best score of all when none was chosen.
        num_instances: instances whose score reached the threshold (0: the answer is empty).
    """

    mask: npt.NDArray[np.bool_]
    score: float
    num_instances: int


@runtime_checkable
class TextSegmenter(Protocol):
    name: str

    def segment(self, image: npt.NDArray[np.uint8], text: str) -> TextMask: ...


def pick_instance(scores: Sequence[float], threshold: float) -> tuple[Optional[int], int]:
    """``(index of the chosen instance or None, number of instances reaching threshold)``.

    The rule of every text backend: among the instances scoring ``>= threshold``, the highest
    score wins (the first on a tie); none reaching it: no instance (an empty mask).
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.size and not np.all(np.isfinite(scores)):
        raise ValueError(f"instance scores must be finite, got {scores}")
    kept = np.flatnonzero(scores >= threshold)
    if kept.size == 0:
        return None, 0
    return int(kept[np.argmax(scores[kept])]), int(kept.size)


TextSegmenterFactory = Callable[..., TextSegmenter]
#: Every text segmenter by name (``segenv.registry.Registry``).
TEXT_SEGMENTERS: Registry[TextSegmenter] = Registry("text segmenter")


def register_text_segmenter(name: str) -> Callable[[TextSegmenterFactory], TextSegmenterFactory]:
    """Decorator: make ``factory(checkpoint=None, **kwargs)`` buildable by ``name``."""
    return TEXT_SEGMENTERS.register(name)


def make_text_segmenter(spec: "str | TextSegmenter", **kwargs) -> TextSegmenter:
    """Build a text segmenter from ``"name"`` or ``"name:/path"`` (``"sam3:/models/sam3"``);
    an instance (anything with ``segment(image, text)``) passes through."""
    if not isinstance(spec, str):
        if not callable(getattr(spec, "segment", None)):
            raise TypeError(f"a text segmenter needs a segment(image, text) method, got {type(spec).__name__}")
        return spec
    return TEXT_SEGMENTERS.build_spec(spec, **kwargs)


def text_segmenter_names() -> list[str]:
    return TEXT_SEGMENTERS.names()


@register_text_segmenter("sam3")
def _build_sam3(**kwargs) -> TextSegmenter:
    from .hf_sam3_text import HFSam3TextSegmenter

    return HFSam3TextSegmenter(**kwargs)


__all__ = ["TEXT_SEGMENTERS", "TextMask", "TextSegmenter", "make_text_segmenter", "pick_instance",
           "register_text_segmenter", "text_segmenter_names"]
