"""What the policy and people see: mask overlays, click markers and trajectory sheets.

The policy's overlay follows SegAgent's released code (docs/conventions.md#overlay): the mask is blended only
where it is on, ``0.5 * pixel + 0.5 * colour``, and no clicks are drawn. People get the clicks
too (filled circles of radius 5, positive red, negative blue, as in paper Fig. 8).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import numpy.typing as npt

GREEN = (0, 255, 0)
POSITIVE_COLOR = (255, 0, 0)
NEGATIVE_COLOR = (0, 0, 255)
COLORS = {"green": GREEN, "blue": (0, 0, 255), "red": (255, 0, 0)}


def blend(
    image: npt.NDArray[np.uint8],  # HxWx3
    color: tuple[int, int, int] = GREEN,
    alpha: float = 0.5,
) -> npt.NDArray[np.uint8]:
    """The whole image tinted: ``uint8((1 - alpha) * pixel + alpha * color)`` (truncating, as
    SegAgent's float-then-uint8 code does). Exact integer arithmetic for ``alpha = 0.5``."""
    col = np.asarray(color, np.uint8)
    if alpha == 0.5:  # floor((p + c) / 2) without leaving uint8
        return (image >> 1) + (col >> 1) + (image & col & 1)
    return np.clip((1.0 - alpha) * image.astype(np.float32) + alpha * col.astype(np.float32), 0, 255).astype(np.uint8)


def overlay_mask(
    image: npt.NDArray[np.uint8],  # HxWx3
    mask: npt.NDArray[np.bool_],  # HxW (bool, or uint8 0/1 or 0/255)
    color: tuple[int, int, int] = GREEN,
    alpha: float = 0.5,
    blended: "npt.NDArray[np.uint8] | None" = None,
) -> npt.NDArray[np.uint8]:
    """The image with ``mask`` as a semi-transparent layer of ``color``, only where it is on.

    Pass ``blended = blend(image, color, alpha)`` when the same image gets many masks (the env
    does, once per episode): the per-step cost is then one masked copy (~0.1 ms at 512 px).
    """
    if blended is None:
        blended = blend(image, color, alpha)
    out = image.copy()
    cv2.copyTo(blended, mask.astype(np.uint8, copy=False), out)
    return out


def draw_clicks(
    image: npt.NDArray[np.uint8],
    clicks: Sequence[tuple[float, float, bool]],
    radius: int = 5,
) -> npt.NDArray[np.uint8]:
    """Draw ``(x, y, positive)`` clicks (normalised coordinates) as filled circles, in place."""
    h, w = image.shape[:2]
    for x, y, positive in clicks:
        centre = (min(int(x * w), w - 1), min(int(y * h), h - 1))
        color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
        cv2.circle(image, centre, radius, color, thickness=-1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, radius, (255, 255, 255), thickness=1, lineType=cv2.LINE_AA)
    return image


def draw_box(image: npt.NDArray[np.uint8], box: Sequence[float], color=(255, 255, 0)) -> npt.NDArray[np.uint8]:
    """Draw a normalised ``(x0, y0, x1, y1)`` box outline, in place."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    cv2.rectangle(image, (int(x0 * w), int(y0 * h)), (min(int(x1 * w), w - 1), min(int(y1 * h), h - 1)), color, 2)
    return image


def resize_image(image: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """Squash to ``size x size`` as SegAgent does (normalised coordinates stay valid)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image.copy()
    interp = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def resize_mask(mask: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.bool_]:
    """Nearest-neighbour resize of a boolean mask to ``size x size``."""
    if mask.shape == (size, size):
        return mask.copy()
    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)


def caption(image: npt.NDArray[np.uint8], text: str, height: int = 18) -> npt.NDArray[np.uint8]:
    """The image with a white strip below holding ``text`` (clipped to the width)."""
    h, w = image.shape[:2]
    strip = np.full((height, w, 3), 255, np.uint8)
    scale = 0.4
    max_chars = max(4, int(w / (7 * scale / 0.4)))
    cv2.putText(strip, text[:max_chars], (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([image, strip], axis=0)


def image_sheet(rows: Sequence[Sequence[npt.NDArray[np.uint8]]], pad: int = 4) -> npt.NDArray[np.uint8]:
    """Tile a ragged grid of equally sized images (rows of frames) on a white background."""
    if not rows or not any(rows):
        raise ValueError("image_sheet needs at least one image")
    h = max(img.shape[0] for row in rows for img in row)
    w = max(img.shape[1] for row in rows for img in row)
    ncols = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            sheet[y : y + img.shape[0], x : x + img.shape[1]] = img
    return sheet
