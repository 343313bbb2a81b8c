"""Typed actions of :class:`segenv.env.SegEnv` and their array form.

The env accepts three equivalent spellings of an action:

* ``Click(x, y, positive)``: ``x`` (column) and ``y`` (row) are normalised to ``[0, 1]`` of the
  image (pixel ``floor(x * W)``, the last pixel for 1.0), so the same action means the same place
  at every resolution (the observation size and the sample's original size differ).
* ``BoxPrompt(x0, y0, x1, y1)``: a box in the same normalised frame, allowed only as the first
  action of an episode (paper Tab. 5, "box first").
* the array form of the env's ``action_space``: ``float32[3] = (x, y, p)``, a positive click when
  ``p >= 0.5`` (a ``Box(0, 1, (3,))`` so that RL libraries can sample and train on it);
* the long array form ``float32[5] = (kind, x, y, x1, y1)``, ``kind`` ``0`` = negative click,
  ``1`` = positive click (``x1, y1`` ignored), ``2`` = box (not part of ``action_space``).

Anything else (NaN, out of range, wrong shape) raises ``ValueError`` naming the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np
import numpy.typing as npt

KIND_NEGATIVE, KIND_POSITIVE, KIND_BOX = 0, 1, 2


def _check_unit(name: str, value: float, *, closed: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from exc
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    upper_ok = value <= 1.0 if closed else value < 1.0
    if value < 0.0 or not upper_ok:
        rng = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name}={value} is out of range {rng}: coordinates are normalised to the image")
    return value


@dataclass(frozen=True)
class Click:
    """A click at normalised ``(x, y)`` in ``[0, 1]``; ``positive`` adds, negative removes."""

    x: float
    y: float
    positive: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _check_unit("Click.x", self.x, closed=True))
        object.__setattr__(self, "y", _check_unit("Click.y", self.y, closed=True))
        object.__setattr__(self, "positive", bool(self.positive))

    def to_pixel(self, height: int, width: int) -> tuple[int, int]:
        """``(row, col)`` of the pixel this click lands on in an image of ``height x width``."""
        return min(int(self.y * height), height - 1), min(int(self.x * width), width - 1)

    @classmethod
    def from_pixel(cls, row: int, col: int, height: int, width: int, positive: bool) -> "Click":
        """The click at the centre of pixel ``(row, col)``; ``to_pixel`` maps it back exactly."""
        return cls((col + 0.5) / width, (row + 0.5) / height, positive)


@dataclass(frozen=True)
class BoxPrompt:
    """A box ``(x0, y0) - (x1, y1)`` normalised to ``[0, 1]``; valid only as the first action."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            object.__setattr__(self, name, _check_unit(f"BoxPrompt.{name}", getattr(self, name), closed=True))
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"BoxPrompt needs x0 <= x1 and y0 <= y1, got {self}")

    def to_pixels(self, height: int, width: int) -> npt.NDArray[np.float32]:
        """``[x0, y0, x1, y1]`` in pixels of an image of ``height x width`` (SAM's box layout)."""
        return np.array([self.x0 * width, self.y0 * height, self.x1 * width, self.y1 * height], np.float32)

    @classmethod
    def from_pixels(cls, box: "tuple[float, float, float, float]", height: int, width: int) -> "BoxPrompt":
        x0, y0, x1, y1 = box
        return cls(x0 / width, y0 / height, min(x1 / width, 1.0), min(y1 / height, 1.0))


Action = Union[Click, BoxPrompt]


def parse_action(action: object) -> Action:
    """Turn any accepted spelling of an action into a :class:`Click` or :class:`BoxPrompt`."""
    if isinstance(action, (Click, BoxPrompt)):
        return action
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read action {action!r}: expected Click, BoxPrompt or float[5]") from exc
    if arr.shape == (3,):  # the action_space form (x, y, p)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
        if not 0.0 <= arr[2] <= 1.0:
            raise ValueError(f"action p={arr[2]} must be in [0, 1] (>= 0.5 means a positive click)")
        return Click(arr[0], arr[1], positive=bool(arr[2] >= 0.5))
    if arr.shape != (5,):
        raise ValueError(
            f"action array has shape {arr.shape}; expected (5,) = (kind, x, y, x1, y1) "
            "or (3,) = (x, y, positive)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
    kind = arr[0]
    if kind not in (KIND_NEGATIVE, KIND_POSITIVE, KIND_BOX):
        raise ValueError(f"action kind must be 0 (negative), 1 (positive) or 2 (box), got {kind}")
    if kind == KIND_BOX:
        return BoxPrompt(arr[1], arr[2], arr[3], arr[4])
    return Click(arr[1], arr[2], positive=kind == KIND_POSITIVE)


def action_to_array(action: Action) -> npt.NDArray[np.float32]:
    """The long ``float32[5]`` array form of a typed action (inverse of :func:`parse_action`)."""
    if isinstance(action, BoxPrompt):
        return np.array([KIND_BOX, action.x0, action.y0, action.x1, action.y1], np.float32)
    return np.array([int(action.positive), action.x, action.y, 0.0, 0.0], np.float32)


class _Invalid:
    """Marker action: the agent produced no usable action this step (e.g. unparsable text)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()
