"""The policy's answer grammar: ONE module renders and parses the action text (docs/conventions.md#action-text).

The prompts themselves live in :mod:`agents.mllm.instructions` (re-exported here).

Action text (the model's answer), one line each, the IoU line first when present::

    Current IOU: 74
    Positive point: (0.47, 0.27)

The two end actions are one word each (SegAgent's finish option and its "No Object Found"
option): ``Finish`` (:class:`segenv.actions.Finish`: keep the mask, the episode ends) and
``No Object Found`` (:class:`segenv.actions.NoObject`: the text refers to nothing here).

Coordinate formats (:class:`ActionFormat`):

* ``"decimal"``: numbers in ``[0, 1)`` with ``decimals`` places (LLaVA variant);
* ``"int1000"``: integers in ``[0, 1000)``, ``int(v * 1000)`` clamped to 999 (Qwen variant);
* ``"loc"``: one grid token ``<loc_k>`` with ``k = row * G + col`` on a ``G x G`` grid, decoded to
  the cell centre (the tiny pointer model's own format; no coordinate order).

``coord_order="yx"`` reads/writes the pair as ``(row, column)``: the released SegAgent-Qwen
checkpoint emits ``(y, x)`` although its prompt says ``(x, y)`` (docs/conventions.md#axis-order).

Parsing follows the released parser and is strict about meaning, lenient about form: the sign
comes from the words "Positive point" / "Negative point" (any case and spacing), the coordinates
from the first parenthesised pair (or ``<loc_k>`` token) after the LAST ``point:``, trailing text
is ignored, and anything unreadable or out of range is reported in :attr:`ParsedAction.error`
(never an exception): the harness then records an invalid step. A readable point wins; without
one, the word ``finish`` (as the released loop checks) or ``no object`` (either optionally
followed by more words, e.g. ``Finished``, ``No Object Found``; any case) gives that end action;
text with both is ambiguous and unusable.

Qwen's grounding box ``<ref>caption</ref><box>(x1,y1),(x2,y2)</box>``: x before y, integers in
``[0, 1000)`` decoded with ``/999`` (:func:`render_box`, :func:`parse_box_text`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Optional

from segenv.actions import NO_OBJECT, STOP, Action, BoxPrompt, Click, Finish, NoObject

from .instructions import LLAVA_PROMPT, PROMPT_STYLES, QWEN_PROMPT, QWEN_SYSTEM, build_prompt  # re-exported

CoordFormat = Literal["decimal", "int1000", "loc"]
CoordOrder = Literal["xy", "yx"]
COORD_FORMATS = ("decimal", "int1000", "loc")
COORD_ORDERS = ("xy", "yx")
FINISH_TEXT = "Finish"
NO_OBJECT_TEXT = "No Object Found"


@dataclass
class ActionFormat:
    """How coordinates are written in the action text.

    Attributes:
        coord_format: ``"decimal"`` ([0, 1) decimals), ``"int1000"`` ([0, 1000) integers) or
            ``"loc"`` (a ``<loc_k>`` grid token).
        coord_order: ``"xy"`` (column first; segagent's own) or ``"yx"`` (row first; the released
            SegAgent-Qwen checkpoint). Ignored by ``"loc"``.
        loc_grid: ``G`` of the ``G x G`` grid of the ``"loc"`` format.
        iou_line: the model's answers start with ``Current IOU: <0-100>`` (the PRM line). Training
            data includes the line only when this is set; parsing reads it whenever present.
        decimals: places of the ``"decimal"`` format.
    """

    coord_format: CoordFormat = "decimal"
    coord_order: CoordOrder = "xy"
    loc_grid: int = 14
    iou_line: bool = False
    decimals: int = 2

    def __post_init__(self) -> None:
        if self.coord_format not in COORD_FORMATS:
            raise ValueError(f"coord_format must be one of {COORD_FORMATS}, got {self.coord_format!r}")
        if self.coord_order not in COORD_ORDERS:
            raise ValueError(f"coord_order must be one of {COORD_ORDERS}, got {self.coord_order!r}")
        if int(self.loc_grid) < 1:
            raise ValueError(f"loc_grid must be >= 1, got {self.loc_grid}")
        if not 1 <= int(self.decimals) <= 6:
            raise ValueError(f"decimals must be in 1..6, got {self.decimals}")
        self.loc_grid = int(self.loc_grid)
        self.decimals = int(self.decimals)

    @classmethod
    def from_model_config(cls, config: object, **overrides) -> "ActionFormat":
        """The format a checkpoint declares in its config (``segagent_coord_format``,
        ``segagent_coord_order``, ``segagent_loc_grid``, ``segagent_iou_line``); defaults otherwise."""
        kwargs = {}
        for field_name in ("coord_format", "coord_order", "loc_grid", "iou_line", "decimals"):
            value = getattr(config, f"segagent_{field_name}", None)
            if value is not None:
                kwargs[field_name] = value
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_model_config(self, config: object) -> None:
        """Record this format on a model config (so a fine-tuned checkpoint knows its own format)."""
        for field_name in ("coord_format", "coord_order", "loc_grid", "iou_line", "decimals"):
            setattr(config, f"segagent_{field_name}", getattr(self, field_name))


@dataclass
class ParsedAction:
    """What a piece of model text means: an action, the predicted IoU, or why it is unusable.

    Attributes:
        action: the :class:`Click`, :class:`BoxPrompt`, :class:`Finish` or :class:`NoObject`,
            or None when unusable.
        iou: the predicted IoU as a fraction in [0, 1] (from ``Current IOU: 74``), or None.
        error: why the text gave no action (None when ``action`` is set).
        text: the text that was parsed.
    """

    action: Optional[Action] = None
    iou: Optional[float] = None
    error: Optional[str] = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.action is not None

    @property
    def click(self) -> Optional[Click]:
        return self.action if isinstance(self.action, Click) else None

    @property
    def box(self) -> Optional[BoxPrompt]:
        return self.action if isinstance(self.action, BoxPrompt) else None

    def key(self) -> tuple:
        """A hashable identity of the action (for deduplicating candidates)."""
        a = self.action
        if isinstance(a, Click):
            return ("click", round(a.x, 6), round(a.y, 6), a.positive)
        if isinstance(a, BoxPrompt):
            return ("box", round(a.x0, 6), round(a.y0, 6), round(a.x1, 6), round(a.y1, 6))
        if isinstance(a, Finish):
            return ("finish",)
        if isinstance(a, NoObject):
            return ("no_object",)
        return ("invalid", self.error)


# ---------------------------------------------------------------------------------- rendering
def _fmt(fmt: Optional[ActionFormat]) -> ActionFormat:
    return ActionFormat() if fmt is None else fmt


def loc_cell(x: float, y: float, grid: int) -> int:
    """THE grid codec, encoding: the row-major cell ``k = row * G + col`` of normalised ``(x, y)``."""
    col, row = min(int(x * grid), grid - 1), min(int(y * grid), grid - 1)
    return row * grid + col


def loc_center(cell: int, grid: int) -> tuple[float, float]:
    """THE grid codec, decoding: the normalised ``(x, y)`` centre of row-major cell ``cell``."""
    row, col = divmod(int(cell), grid)
    return (col + 0.5) / grid, (row + 0.5) / grid


def render_coords(x: float, y: float, fmt: Optional[ActionFormat] = None) -> str:
    """The coordinate part of an action: ``(0.47, 0.27)``, ``(470, 270)`` or ``<loc_k>``."""
    fmt = _fmt(fmt)
    if fmt.coord_format == "loc":
        return f"<loc_{loc_cell(x, y, fmt.loc_grid)}>"
    if fmt.coord_format == "int1000":
        a, b = (min(int(v * 1000), 999) for v in (x, y))
        text_a, text_b = str(a), str(b)
    else:
        scale = 10**fmt.decimals
        a, b = (min(int(round(v * scale)), scale - 1) for v in (x, y))  # stay inside [0, 1)
        text_a, text_b = (f"{v / scale:.{fmt.decimals}f}" for v in (a, b))
    if fmt.coord_order == "yx":
        text_a, text_b = text_b, text_a
    return f"({text_a}, {text_b})"


def render_iou(iou: float) -> str:
    """``Current IOU: 74`` for ``iou=0.74`` (a fraction in [0, 1]; written on a 0-100 scale)."""
    if not (0.0 <= float(iou) <= 1.0):
        raise ValueError(f"iou must be a fraction in [0, 1], got {iou}")
    return f"Current IOU: {int(round(float(iou) * 100))}"


def render_action(action: "Click | Finish | NoObject", fmt: Optional[ActionFormat] = None, iou: Optional[float] = None) -> str:
    """The action text: ``"Current IOU: 74\nPositive point: (0.47, 0.27)"``, ``"Finish"`` or
    ``"No Object Found"``.

    The IoU line (``iou`` a fraction in [0, 1]) is written first when ``iou`` is given.
    """
    if isinstance(action, Click):
        word = "Positive" if action.positive else "Negative"
        line = f"{word} point: {render_coords(action.x, action.y, fmt)}"
    elif isinstance(action, Finish):
        line = FINISH_TEXT
    elif isinstance(action, NoObject):
        line = NO_OBJECT_TEXT
    else:
        kind = type(action).__name__
        raise TypeError(f"render_action takes a Click, Finish or NoObject, got {kind} (use render_box for boxes)")
    return line if iou is None else f"{render_iou(iou)}\n{line}"


def render_box(box: BoxPrompt, caption: Optional[str] = None) -> str:
    """Qwen's grounding string ``<ref>caption</ref><box>(x1,y1),(x2,y2)</box>`` (``round(v * 999)``)."""
    nums = [min(999, int(round(v * 999))) for v in (box.x0, box.y0, box.x1, box.y1)]
    ref = f"<ref>{caption}</ref>" if caption is not None else ""
    return f"{ref}<box>({nums[0]},{nums[1]}),({nums[2]},{nums[3]})</box>"


# ---------------------------------------------------------------------------------- parsing
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_IOU_RE = re.compile(r"current\s*iou\s*[:=]?\s*(" + _NUM + r")\s*(%?)", re.IGNORECASE)
_POINT_RE = re.compile(r"point\s*:", re.IGNORECASE)
_SIGN_RE = re.compile(r"(positive|negative)\s*$", re.IGNORECASE)
_PAREN_RE = re.compile(r"\(([^()]*)\)")
_LOC_RE = re.compile(r"<\s*loc_(\d+)\s*>", re.IGNORECASE)
_BOX_RE = re.compile(r"<box>\s*\(([^()]*)\)\s*,?\s*\(([^()]*)\)\s*</box>", re.IGNORECASE)
_INT_RE = re.compile(r"^\s*([+-]?\d+)\s*$")
_FLOAT_RE = re.compile(r"^\s*(" + _NUM + r")\s*$")
_FINISH_RE = re.compile(r"\bfinish", re.IGNORECASE)
_NO_OBJECT_RE = re.compile(r"\bno\s+object", re.IGNORECASE)


def _snap(v: float, n: Optional[int]) -> float:
    """``v`` in [0, 1] snapped to the centre of pixel ``min(round(v * n), n - 1)`` (the released
    evaluation's rounding), or unchanged when ``n`` is None."""
    if n is None:
        return v
    pixel = min(int(round(v * n)), n - 1)
    return (pixel + 0.5) / n


_IOU_LINES_RE = re.compile(r"(?:\s*current\s*iou\s*[:=]?\s*" + _NUM + r"\s*%?[ \t]*\n)+\s*", re.IGNORECASE)


def action_may_begin(prefix: str, iou_line: bool) -> bool:
    """Whether the action word (``Positive point``, ``Finish``, ``No Object Found``, ...) may come
    next after the answer text ``prefix`` generated so far.

    The grammar has one action per answer, right after the optional ``Current IOU`` line: so an
    action may begin after a complete IoU line (newline included), or at the very start when the
    format writes no IoU line (``iou_line=False``). A model whose answers start with the IoU line
    never learned to start with an action, so its scores there say nothing about the action. A
    repeated IoU line (a malformed answer the parser still reads) counts as one, so that nothing
    after it escapes the bias.
    """
    if not prefix.strip():
        return not iou_line
    return _IOU_LINES_RE.fullmatch(prefix) is not None


def _parse_iou(text: str) -> tuple[Optional[float], Optional[str]]:
    m = _IOU_RE.search(text)
    if m is None:
        return None, None
    value = float(m.group(1))
    if not 0.0 <= value <= 100.0:
        return None, f"Current IOU {m.group(1)} is outside 0..100"
    return value / 100.0, None


def _parse_pair(inner: str, fmt: ActionFormat) -> tuple[Optional[tuple[float, float]], Optional[str]]:
    parts = inner.split(",")
    if len(parts) != 2:
        return None, f"expected two numbers in ({inner}), got {len(parts)} parts"
    values = []
    for part in parts:
        if fmt.coord_format == "int1000":
            m = _INT_RE.match(part)
            if m is None:
                return None, f"{part.strip()!r} is not an integer in [0, 1000) (int1000 format)"
            v = int(m.group(1))
            if not 0 <= v <= 999:
                return None, f"{v} is outside [0, 1000) (int1000 format)"
            values.append(v / 1000.0)
        else:
            m = _FLOAT_RE.match(part)
            if m is None:
                return None, f"{part.strip()!r} is not a number in [0, 1] (decimal format)"
            v = float(m.group(1))
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                return None, f"{m.group(1)} is outside [0, 1] (decimal format)"
            values.append(v)
    a, b = values
    return ((b, a) if fmt.coord_order == "yx" else (a, b)), None


def parse_box_text(text: str) -> ParsedAction:
    """Read Qwen's ``<box>(x1,y1),(x2,y2)</box>`` (integers in [0, 1000), ``/999``; corners are sorted).

    The box stays continuous (no pixel snapping): the segmenter takes it in pixels as it is.
    """
    m = _BOX_RE.search(text)
    if m is None:
        return ParsedAction(error="no <box>(x1,y1),(x2,y2)</box> found", text=text)
    nums = []
    for corner in (m.group(1), m.group(2)):
        parts = corner.split(",")
        if len(parts) != 2:
            return ParsedAction(error=f"box corner ({corner}) needs two integers", text=text)
        for part in parts:
            mi = _INT_RE.match(part)
            if mi is None:
                return ParsedAction(error=f"box value {part.strip()!r} is not an integer", text=text)
            v = int(mi.group(1))
            if not 0 <= v <= 999:
                return ParsedAction(error=f"box value {v} is outside [0, 1000)", text=text)
            nums.append(v / 999.0)
    x0, y0, x1, y1 = nums
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    iou, _ = _parse_iou(text)
    if x0 == x1 or y0 == y1:
        return ParsedAction(iou=iou, error=f"box {m.group(0)} has no area (equal corners)", text=text)
    return ParsedAction(action=BoxPrompt(x0, y0, x1, y1), iou=iou, text=text)


def _parse_end(text: str) -> "tuple[Optional[Finish | NoObject], Optional[str]]":
    """``Finish`` / ``NoObject`` from the end words, ignoring any ``<ref>caption</ref>``."""
    text = re.sub(r"<ref>.*?</ref>", " ", text, flags=re.IGNORECASE | re.DOTALL)
    finish, no_object = _FINISH_RE.search(text), _NO_OBJECT_RE.search(text)
    if finish and no_object:
        return None, "the answer says both 'Finish' and 'No Object Found'"
    return (STOP if finish else NO_OBJECT if no_object else None), None


def parse_action_text(
    text: str,
    fmt: Optional[ActionFormat] = None,
    height: Optional[int] = None,
    width: Optional[int] = None,
) -> ParsedAction:
    """Read a model's answer; never raises on bad text (see the module docstring).

    Precedence: a readable point; else, when the text has no ``point:``, a Qwen ``<box>``;
    else ``Finish`` / ``No Object Found``; else the reason it is unusable.

    With ``height``/``width`` (the image the model looked at), a point is snapped to the centre of
    the pixel ``min(round(v * H), H - 1)`` as in the released evaluation; without them the
    normalised value is kept (``int1000``: ``A / 1000``).
    """
    fmt = _fmt(fmt)
    if not isinstance(text, str):
        return ParsedAction(error=f"expected text, got {type(text).__name__}", text=str(text))
    iou, iou_error = _parse_iou(text)
    if iou_error is not None:
        return ParsedAction(error=iou_error, text=text)
    has_point = _POINT_RE.search(text) is not None
    if has_point:
        point = _parse_point(text, fmt, height, width, iou)
        if point.ok:
            return point
    elif _BOX_RE.search(text):
        return parse_box_text(text)
    end, end_error = _parse_end(text)
    if end is not None or end_error is not None:
        return ParsedAction(action=end, iou=iou, error=end_error, text=text)
    if has_point:
        return point
    return ParsedAction(
        iou=iou, error="no 'Positive point:', 'Negative point:', 'Finish' or 'No Object Found' found", text=text
    )


def _parse_point(text: str, fmt: ActionFormat, height: Optional[int], width: Optional[int], iou: Optional[float]) -> ParsedAction:
    """The click after the LAST ``point:`` (its sign from the words just before it)."""
    last = list(_POINT_RE.finditer(text))[-1]
    sign = _SIGN_RE.search(text[: last.start()])
    if sign is None:
        return ParsedAction(iou=iou, error="the last 'point:' is not preceded by Positive/Negative", text=text)
    positive = sign.group(1).lower() == "positive"
    rest = text[last.end():]
    if fmt.coord_format == "loc":
        m = _LOC_RE.search(rest)
        if m is None:
            return ParsedAction(iou=iou, error="no <loc_k> token after 'point:'", text=text)
        g = fmt.loc_grid
        k = int(m.group(1))
        if not 0 <= k < g * g:
            return ParsedAction(iou=iou, error=f"<loc_{k}> is outside the {g}x{g} grid", text=text)
        return ParsedAction(action=Click(*loc_center(k, g), positive), iou=iou, text=text)
    m = _PAREN_RE.search(rest)
    if m is None:
        return ParsedAction(iou=iou, error="no (A, B) pair after 'point:'", text=text)
    pair, error = _parse_pair(m.group(1), fmt)
    if pair is None:
        return ParsedAction(iou=iou, error=error, text=text)
    x, y = pair
    return ParsedAction(action=Click(_snap(x, width), _snap(y, height), positive), iou=iou, text=text)


__all__ = [
    "ActionFormat",
    "action_may_begin",
    "COORD_FORMATS",
    "FINISH_TEXT",
    "loc_cell",
    "loc_center",
    "NO_OBJECT_TEXT",
    "ParsedAction",
    "PROMPT_STYLES",
    "build_prompt",
    "parse_action_text",
    "parse_box_text",
    "render_action",
    "render_box",
    "render_coords",
    "render_iou",
]
