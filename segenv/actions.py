"""The one action vocabulary of :class:`segenv.env.SegEnv`, the harness and the agents.

Typed actions:

* ``Click(x, y, positive)``: ``x`` (column) and ``y`` (row) are normalised to ``[0, 1]`` of the
  image (pixel ``floor(x * W)``, the last pixel for 1.0), so the same action means the same place
  at every resolution (the observation size and the sample's original size differ).
* ``BoxPrompt(x0, y0, x1, y1)``: a box in the same normalised frame, allowed only as the first
  action of an episode (paper Tab. 5, "box first").
* ``Finish()``: the agent says the mask is done; the episode ends and keeps the mask (SegAgent's
  ``Finish`` answer).
* ``NoObject()``: the text refers to nothing in the image; the episode ends with an empty mask
  (right iff the target is empty; SegAgent's "No Object Found").

Markers: :data:`INVALID` (or ``None``) is an invalid step (unusable model text): recorded, the
mask kept. :data:`STOP`, what Python agents return to end an episode, *is* a :class:`Finish`.

Array forms (what RL libraries sample):

* ``float32[3] = (x, y, p)``: the env's default ``action_space`` (``action_mode="click"``), a
  positive click when ``p >= 0.5``;
* ``float32[4] = (x, y, p, e)``: ``action_mode="full"``; ``e < 0.5`` is the click ``(x, y, p)``,
  ``e >= 0.5`` ends the episode: ``Finish`` when ``p >= 0.5`` ("the object is there and
  masked"), ``NoObject`` when ``p < 0.5`` (``x, y`` ignored);
* ``float32[5] = (kind, x, y, x1, y1)``, the form trajectories are recorded in: ``kind`` ``0`` =
  negative click, ``1`` = positive click (``x1, y1`` ignored), ``2`` = box, ``3`` = finish,
  ``4`` = no object (coordinates ignored).

Validation is strict and happens before anything changes; anything else raises ``ValueError``
naming the problem: coordinates must be real numbers (not bool, str or complex) inside the
range; ``Click.positive`` must be a bool or the number 0 or 1 (``"false"``, ``"no"``, NaN and 0.7
are refused); a box needs ``x0 < x1`` and ``y0 < y1`` (no zero width or height); arrays must be
real-valued (no complex, bool, str or object arrays), finite, of shape (3,), (4,) or (5,), with
``p``/``e`` in ``[0, 1]`` and an integral ``kind`` in 0..4.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

KIND_NEGATIVE, KIND_POSITIVE, KIND_BOX, KIND_FINISH, KIND_NO_OBJECT = 0, 1, 2, 3, 4
KINDS = (KIND_NEGATIVE, KIND_POSITIVE, KIND_BOX, KIND_FINISH, KIND_NO_OBJECT)


def _real(name: str, value: Any) -> float:
    """``value`` as a float if it is a real number (Python or numpy scalar, or a 0-d real array)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        return float(value)
    except OverflowError as exc:
        raise ValueError(f"{name}={value!r} is too large for a float") from exc


def _check_unit(name: str, value: Any, *, closed: bool = False) -> float:
    value = _real(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    upper_ok = value <= 1.0 if closed else value < 1.0
    if value < 0.0 or not upper_ok:
        rng = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name}={value} is out of range {rng}: coordinates are normalised to the image")
    return value


def _check_flag(name: str, value: Any) -> bool:
    """A bool, or a number equal to 0 or 1; nothing else (no strings, NaN or 0.7)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Real) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be a bool (or 0 / 1), got {type(value).__name__} {value!r}")


@dataclass(frozen=True)
class Click:
    """A click at normalised ``(x, y)`` in ``[0, 1]``; ``positive`` adds, negative removes."""

    x: float
    y: float
    positive: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _check_unit("Click.x", self.x, closed=True))
        object.__setattr__(self, "y", _check_unit("Click.y", self.y, closed=True))
        object.__setattr__(self, "positive", _check_flag("Click.positive", self.positive))

    def to_pixel(self, height: int, width: int) -> tuple[int, int]:
        """``(row, col)`` of the pixel this click lands on in an image of ``height x width``."""
        return min(int(self.y * height), height - 1), min(int(self.x * width), width - 1)

    @classmethod
    def from_pixel(cls, row: int, col: int, height: int, width: int, positive: bool) -> "Click":
        """The click at the centre of pixel ``(row, col)``; ``to_pixel`` maps it back exactly."""
        return cls((col + 0.5) / width, (row + 0.5) / height, positive)


@dataclass(frozen=True)
class BoxPrompt:
    """A box ``(x0, y0) - (x1, y1)`` normalised to ``[0, 1]``, ``x0 < x1`` and ``y0 < y1``;
    valid only as the first action."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            object.__setattr__(self, name, _check_unit(f"BoxPrompt.{name}", getattr(self, name), closed=True))
        if not (self.x0 < self.x1 and self.y0 < self.y1):
            raise ValueError(f"BoxPrompt needs x0 < x1 and y0 < y1 (a box with an area), got {self}")

    def to_pixels(self, height: int, width: int) -> npt.NDArray[np.float32]:
        """``[x0, y0, x1, y1]`` in pixels of an image of ``height x width`` (SAM's box layout)."""
        return np.array([self.x0 * width, self.y0 * height, self.x1 * width, self.y1 * height], np.float32)

    @classmethod
    def from_pixels(cls, box: "tuple[float, float, float, float]", height: int, width: int) -> "BoxPrompt":
        x0, y0, x1, y1 = box
        return cls(x0 / width, y0 / height, min(x1 / width, 1.0), min(y1 / height, 1.0))


@dataclass(frozen=True)
class Finish:
    """End the episode and keep the current mask ("I have refined it as far as I can")."""


@dataclass(frozen=True)
class NoObject:
    """End the episode with an empty mask: the text refers to nothing in this image."""


class _Invalid:
    """Marker action: the agent produced no usable action this step (e.g. unparsable text)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()
STOP = Finish()  # what Python agents return to end an episode: the env's Finish action
NO_OBJECT = NoObject()

Action = Union[Click, BoxPrompt, Finish, NoObject]
END_ACTIONS = {Finish: "finish", NoObject: "no_object"}  # type -> the name in info["end_action"]


def end_action_name(action: object) -> Optional[str]:
    """``"finish"`` / ``"no_object"`` for the actions that end an episode, None otherwise."""
    return END_ACTIONS.get(type(action))


def _real_array(action: object) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(action)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot read action {action!r}: expected Click, BoxPrompt, Finish, NoObject or a float array") from exc
    if arr.dtype.kind not in "iuf":
        raise ValueError(
            f"cannot read action {action!r}: an action array must hold real numbers, got dtype {arr.dtype} "
            "(expected Click, BoxPrompt, Finish, NoObject or a float array)"
        )
    arr = arr.astype(np.float64)
    if arr.shape not in ((3,), (4,), (5,)):
        raise ValueError(
            f"action array has shape {arr.shape}; expected (3,) = (x, y, positive), "
            "(4,) = (x, y, positive, end) or (5,) = (kind, x, y, x1, y1)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
    return arr


def parse_action(action: object) -> Action:
    """Turn any accepted spelling of an action into a typed :data:`Action` (see the module docstring).

    The markers ``None`` / :data:`INVALID` are not actions: the env handles them before parsing.
    """
    if isinstance(action, (Click, BoxPrompt, Finish, NoObject)):
        return action
    arr = _real_array(action)
    if arr.shape in ((3,), (4,)):  # the action_space forms (x, y, p) and (x, y, p, e)
        for name, v in zip("pe", arr[2:]):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"action {name}={v} must be in [0, 1] (>= 0.5 means yes)")
        positive = bool(arr[2] >= 0.5)
        if arr.shape == (4,) and arr[3] >= 0.5:
            return STOP if positive else NO_OBJECT
        return Click(arr[0], arr[1], positive=positive)
    kind = arr[0]
    if kind not in KINDS:
        raise ValueError(f"action kind must be 0 (negative), 1 (positive), 2 (box), 3 (finish) or 4 (no object), got {kind}")
    if kind == KIND_FINISH:
        return STOP
    if kind == KIND_NO_OBJECT:
        return NO_OBJECT
    if kind == KIND_BOX:
        return BoxPrompt(arr[1], arr[2], arr[3], arr[4])
    return Click(arr[1], arr[2], positive=bool(kind == KIND_POSITIVE))


def action_to_array(action: Action) -> npt.NDArray[np.float32]:
    """The long ``float32[5]`` array form of a typed action (inverse of :func:`parse_action`)."""
    if isinstance(action, BoxPrompt):
        return np.array([KIND_BOX, action.x0, action.y0, action.x1, action.y1], np.float32)
    if isinstance(action, Finish):
        return np.array([KIND_FINISH, 0, 0, 0, 0], np.float32)
    if isinstance(action, NoObject):
        return np.array([KIND_NO_OBJECT, 0, 0, 0, 0], np.float32)
    if isinstance(action, Click):
        return np.array([int(action.positive), action.x, action.y, 0.0, 0.0], np.float32)
    raise TypeError(f"action_to_array takes a typed action, got {type(action).__name__}")


def action_to_space(action: Action, action_mode: str = "click") -> npt.NDArray[np.float32]:
    """A click or end action in the env's ``action_space`` form: ``(x, y, p)`` or ``(x, y, p, e)``.

    ``Finish`` / ``NoObject`` exist only in ``action_mode="full"``; a box has no space form.
    """
    if action_mode not in ("click", "full"):
        raise ValueError(f"action_mode must be 'click' or 'full', got {action_mode!r}")
    end = end_action_name(action)
    if end is not None:
        if action_mode != "full":
            raise ValueError(f"{type(action).__name__} has no array form in action_mode='click'; use action_mode='full'")
        return np.array([0.0, 0.0, 1.0 if end == "finish" else 0.0, 1.0], np.float32)
    if not isinstance(action, Click):
        raise ValueError(f"only clicks and end actions have an action_space form, got {action!r}")
    xyp = [action.x, action.y, float(action.positive)]
    return np.array(xyp + [0.0] if action_mode == "full" else xyp, np.float32)
