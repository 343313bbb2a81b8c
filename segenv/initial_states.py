"""The masks an episode can start from (paper B.1; Tab. 5's initial actions), one function each.

An initial state turns a dataset sample into the episode's first mask and the prompts that made
it, which later clicks add to (the click segmenter sees the box or the points again at every
step):

* ``"empty"``: no mask, no prompt (the paper's default);
* ``"box"``: the ground-truth box as the first prompt;
* ``"points"``: ``initial_points`` random pixels inside the ground-truth box, each labelled by the
  ground truth (plus one positive pixel if none fell on the object);
* ``"text"``: the text segmenter's answer to the referring expression (SAM 3's text model:
  :mod:`segenv.segmenters.text`), the zero-click baseline's mask; its bounding box becomes the
  episode's box prompt, as Tab. 5's "Qwen Box" (a grounding model's box as the first prompt), so
  clicks refine around it. An empty answer starts from an empty mask and no prompt.

Each is a function ``(context) -> InitialPrompt`` in :data:`INITIAL_STATES` (a registry: a new
initial state is one more function). Random draws use the env's ``np_random`` in a fixed order,
so the same seed gives the same start, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import numpy.typing as npt

from .datasets import Sample
from .datasets.base import mask_box
from .registry import Registry
from .segmenters import Segmenter
from .segmenters.text import TextSegmenter


@dataclass
class InitialContext:
    """What an initial state may use: the sample, the click segmenter (its image already set), the
    env's seeded generator, and the env's options."""

    sample: Sample
    segmenter: Segmenter
    rng: np.random.Generator
    initial_points: int = 3
    text_segmenter: Optional[TextSegmenter] = None


@dataclass
class InitialPrompt:
    """The first mask (HxW bool at the sample's size) and the prompts behind it."""

    mask: npt.NDArray[np.bool_]
    points: list[tuple[float, float]] = field(default_factory=list)  # pixel (x, y) = (col, row)
    labels: list[int] = field(default_factory=list)
    box: Optional[npt.NDArray[np.float32]] = None  # (x0, y0, x1, y1) pixels
    logits: Any = None  # the click segmenter's logits of that mask (fed back at the next click)
    info: dict = field(default_factory=dict)  # extra reset info (deterministic values only)


InitialState = Callable[[InitialContext], InitialPrompt]
#: Every initial state by name (``env.initial_state`` picks one).
INITIAL_STATES: Registry[InitialPrompt] = Registry("initial state", replace=False)


def _prompt_arrays(points, labels, box) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    return np.asarray(points, np.float32).reshape(-1, 2), np.asarray(labels, np.int64), box


@INITIAL_STATES.register("empty")
def empty_start(ctx: InitialContext) -> InitialPrompt:
    return InitialPrompt(np.zeros(ctx.sample.mask.shape, bool))


@INITIAL_STATES.register("box")
def box_start(ctx: InitialContext) -> InitialPrompt:
    box = np.array(ctx.sample.box, np.float32)
    mask, logits = ctx.segmenter.predict(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), box)
    return InitialPrompt(np.asarray(mask), box=box, logits=logits)


def random_points(sample: Sample, rng: np.random.Generator, n: int) -> tuple[list[tuple[float, float]], list[int]]:
    """``n`` random pixels in the sample's box, labelled by its mask; one positive object pixel is
    added when none fell on the object (an empty target keeps its all-negative points)."""
    x0, y0, x1, y1 = sample.box
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    for _ in range(n):
        col = int(rng.integers(x0, max(x0 + 1, x1)))
        row = int(rng.integers(y0, max(y0 + 1, y1)))
        points.append((float(col), float(row)))
        labels.append(int(sample.mask[row, col]))
    if 1 not in labels:  # make sure the initial mask is not trivially empty
        rows, cols = np.nonzero(sample.mask)
        if len(rows):
            k = int(rng.integers(len(rows)))
            points.append((float(cols[k]), float(rows[k])))
            labels.append(1)
    return points, labels


@INITIAL_STATES.register("points")
def points_start(ctx: InitialContext) -> InitialPrompt:
    points, labels = random_points(ctx.sample, ctx.rng, ctx.initial_points)
    mask, logits = ctx.segmenter.predict(*_prompt_arrays(points, labels, None))
    return InitialPrompt(np.asarray(mask), points, labels, logits=logits)


@INITIAL_STATES.register("text")
def text_start(ctx: InitialContext) -> InitialPrompt:
    if ctx.text_segmenter is None:
        raise ValueError("initial_state='text' needs a text segmenter: text_segmenter='sam3:/path/to/sam3'")
    answer = ctx.text_segmenter.segment(ctx.sample.image, ctx.sample.text)
    mask = np.asarray(answer.mask, bool)
    info = {"text_score": float(answer.score), "text_instances": int(answer.num_instances)}
    if not mask.any():
        return InitialPrompt(mask, info=info)
    x0, y0, x1, y1 = mask_box(mask)
    return InitialPrompt(mask, box=np.array([x0, y0, x1, y1], np.float32), info=info)


def initial_state_names() -> list[str]:
    return INITIAL_STATES.names()


__all__ = ["INITIAL_STATES", "InitialContext", "InitialPrompt", "InitialState", "box_start", "empty_start",
           "initial_state_names", "points_start", "random_points", "text_start"]
