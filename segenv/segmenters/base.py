"""The interactive segmenter protocol and registry.

A segmenter follows segment-anything's "set the image once, prompt many times" pattern:

* ``set_image(image)``: HxWx3 uint8 RGB at the sample's original size; computes and caches
  whatever is per-image (SAM's image embedding). Called once per episode.
* ``predict(points, labels, box=None, prev_logits=None) -> (mask, logits)``:
  ``points`` float32 Nx2 ``(x, y)`` pixel coordinates in that image, as segment-anything's
  ``SamPredictor`` takes them: the env passes the clicked pixel's integer indices ``(col, row)``
  (no half-pixel offset; SAM's prompt encoder adds its own), ``labels``
  int N (1 positive, 0 negative), ``box`` float32[4] ``(x0, y0, x1, y1)`` pixels or None,
  ``prev_logits`` whatever this segmenter returned as ``logits`` last step (SAM: the chosen
  1x256x256 low-res logits, fed back as ``mask_input``). Returns an HxW bool mask and the new
  logits (or None for backends without them).
* ``predict_many(prompts)``: the same for K prompt sets on the cached image (tree search).

Two optional capabilities serve vector envs (``segenv.vector``), where each sub-env's segmenter
holds its own image; :func:`predict_batch` and :func:`spawn_segmenters` use them when present and
fall back to plain loops otherwise, so every backend works in a vector env:

* ``predict_batch(requests)``: ``requests`` a sequence of ``(segmenter, Prompt)`` pairs, each
  segmenter with its image already set; returns one ``(mask, logits)`` per pair, equal to
  ``segmenter.predict(...)`` on that pair. A backend that can batch across images (clicknet: one
  decoder forward over the stacked cached features) does so for the pairs it recognises and
  loops over the rest. :class:`SegmenterBase` loops: GrabCut, and the SAM family (its decoder
  takes one image embedding per call, and on CPU even same-image batching is slower than a loop).
* ``spawn()`` (clicknet, the SAM family): a new segmenter over the same weights with its own
  per-image state, so K sub-envs share one model (and, for clicknet, one batched forward).
  Without it a vector env builds K segmenters from the spec.

Backends register with :func:`register_segmenter` and are built with :func:`make_segmenter`,
whose spec may carry a path: ``"sam:/ckpt/sam_vit_b.pth"`` or ``"hf:/models/sam-vit-base"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..registry import Registry


@dataclass
class Prompt:
    """One set of prompts for :meth:`Segmenter.predict_many`."""

    points: npt.NDArray[np.float32]  # Nx2 (x, y) pixels
    labels: npt.NDArray[np.int64]  # N, 1 positive / 0 negative
    box: Optional[npt.NDArray[np.float32]] = None  # [4] (x0, y0, x1, y1) pixels
    prev_logits: Any = None


@runtime_checkable
class Segmenter(Protocol):
    name: str

    def set_image(self, image: npt.NDArray[np.uint8]) -> None: ...

    def predict(
        self,
        points: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        box: Optional[npt.NDArray[np.float32]] = None,
        prev_logits: Any = None,
    ) -> tuple[npt.NDArray[np.bool_], Any]: ...

    def predict_many(self, prompts: Sequence[Prompt]) -> list[tuple[npt.NDArray[np.bool_], Any]]: ...


class SegmenterBase:
    """Shared plumbing: input checks and a looped ``predict_many``; backends override as needed."""

    name = "base"
    image_shape: Optional[tuple[int, int]] = None

    def _check_image(self, image: npt.NDArray[np.uint8]) -> None:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{self.name}: set_image needs an HxWx3 uint8 RGB array, got {getattr(image, 'shape', type(image))}")
        if image.dtype != np.uint8:
            raise ValueError(f"{self.name}: set_image needs uint8 pixels, got {image.dtype}")
        self.image_shape = image.shape[:2]

    def _check_prompt(self, points, labels, box) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        if self.image_shape is None:
            raise RuntimeError(f"{self.name}: call set_image(image) before predict(...)")
        points = np.asarray(points, np.float32).reshape(-1, 2)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if len(points) != len(labels):
            raise ValueError(f"{self.name}: {len(points)} points but {len(labels)} labels")
        if not np.all(np.isfinite(points)):
            raise ValueError(f"{self.name}: point coordinates must be finite")
        if box is not None:
            box = np.asarray(box, np.float32).reshape(4)
        if len(points) == 0 and box is None:
            raise ValueError(f"{self.name}: predict needs at least one point or a box")
        return points, labels, box

    def predict_many(self, prompts: Sequence[Prompt]) -> list[tuple[npt.NDArray[np.bool_], Any]]:
        return [self.predict(p.points, p.labels, p.box, p.prev_logits) for p in prompts]

    def predict_batch(self, requests: Sequence[tuple["Segmenter", Prompt]]) -> list[tuple[npt.NDArray[np.bool_], Any]]:
        """One ``(mask, logits)`` per ``(segmenter, prompt)`` pair; the plain loop (see the module docstring)."""
        return _loop(requests)


def _loop(requests: Sequence[tuple["Segmenter", Prompt]]) -> list[tuple[npt.NDArray[np.bool_], Any]]:
    return [seg.predict(p.points, p.labels, p.box, p.prev_logits) for seg, p in requests]


def predict_batch(requests: Sequence[tuple["Segmenter", Prompt]]) -> list[tuple[npt.NDArray[np.bool_], Any]]:
    """Segment several ``(segmenter, prompt)`` pairs in one call: the first segmenter's
    ``predict_batch`` when it has one (it batches what it can and loops over the rest), else a loop."""
    if not requests:
        return []
    batch = getattr(requests[0][0], "predict_batch", None)
    results = batch(requests) if callable(batch) else _loop(requests)
    if len(results) != len(requests):
        raise RuntimeError(f"predict_batch returned {len(results)} results for {len(requests)} requests")
    return list(results)


def spawn_segmenters(spec: "str | Segmenter", n: int, **kwargs) -> list["Segmenter"]:
    """``n`` segmenters for ``n`` sub-envs, each with its own per-image state.

    The first is built from ``spec`` (as :func:`make_segmenter`); the others are its ``spawn()``
    (same weights) when it has one, else built from the spec again. A segmenter *instance*
    without ``spawn`` cannot serve several sub-envs (each ``set_image`` would overwrite the
    others' image), so that raises ``ValueError`` for ``n > 1``.
    """
    if n < 1:
        raise ValueError(f"need at least one segmenter, got n={n}")
    first = make_segmenter(spec, **kwargs)
    spawn = getattr(first, "spawn", None)
    if callable(spawn):
        return [first] + [spawn() for _ in range(n - 1)]
    if n > 1 and not isinstance(spec, str):
        raise ValueError(
            f"a segmenter instance ({type(spec).__name__}) without spawn() cannot serve {n} sub-envs (each caches its "
            "own image): pass the segmenter's name, or give it a spawn() that shares the weights"
        )
    return [first] + [make_segmenter(spec, **kwargs) for _ in range(n - 1)]


SegmenterFactory = Callable[..., Segmenter]
#: Every segmenter backend by name (``segenv.registry.Registry``; a new registration replaces an old one).
SEGMENTERS: Registry[Segmenter] = Registry("segmenter")


def register_segmenter(name: str) -> Callable[[SegmenterFactory], SegmenterFactory]:
    """Decorator: make ``factory(checkpoint=None, **kwargs)`` buildable by ``name``."""
    return SEGMENTERS.register(name)


def make_segmenter(spec: "str | Segmenter", **kwargs) -> Segmenter:
    """Build a segmenter from ``"name"`` or ``"name:/path/to/checkpoint"``; instances pass through."""
    if not isinstance(spec, str):
        return spec
    return SEGMENTERS.build_spec(spec, **kwargs)


def segmenter_names() -> list[str]:
    return SEGMENTERS.names()
