"""The tiny model's click labels on its ``grid x grid`` pointer grid: the oracle's next click moved to
the cell whose centre lies deepest in the error region of that sign, the cell codec, and the cell
oracle (perfect labels at the model's resolution). Split from :mod:`agents.training.tiny_data`, which
builds the examples from them."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from segenv.actions import Click, parse_action
from segenv.clicker import next_click, padded_distance
from segenv.rollout import STOP


def deepest_cell(region: npt.NDArray[np.bool_], grid: int) -> Optional[int]:
    """The ``grid x grid`` cell (row-major) whose centre lies deepest inside ``region`` (HxW bool), by
    RITM's padded distance transform; None when no cell centre is inside."""
    h, w = region.shape
    dist = padded_distance(region)
    rows = np.minimum(((np.arange(grid) + 0.5) * h / grid).astype(int), h - 1)
    cols = np.minimum(((np.arange(grid) + 0.5) * w / grid).astype(int), w - 1)
    at = dist[rows][:, cols]
    return int(np.argmax(at)) if at.max() > 0 else None


def pixel_cell(row: int, col: int, h: int, w: int, grid: int) -> int:
    """The cell of pixel ``(row, col)`` of an ``h x w`` image on a ``grid x grid`` grid."""
    return int(min(row * grid // h, grid - 1) * grid + min(col * grid // w, grid - 1))


def label_cell(gt: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_], grid: int) -> Optional[tuple[bool, int]]:
    """``(positive, cell)`` for the oracle's next click on a ``grid x grid`` cell grid, or None.

    ``gt``, ``pred``: HxW bool masks at the same resolution.
    """
    click = next_click(gt, pred)
    if click is None:
        return None
    h, w = gt.shape
    region = (gt & ~pred) if click.positive else (~gt & pred)
    cell = deepest_cell(region, grid)
    return click.positive, (pixel_cell(click.row, click.col, h, w, grid) if cell is None else cell)


def cell_to_xy(cell: int, grid: int) -> tuple[float, float]:
    """The normalised ``(x, y)`` centre of grid cell ``cell`` (row-major): the one grid codec,
    :func:`agents.mllm.prompt.loc_center`, which the action grammar decodes ``<loc_k>`` with."""
    from agents.mllm.prompt import loc_center

    return loc_center(cell, grid)


def prep_image(image: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """HxWx3 uint8 -> ``size x size`` (PIL bicubic, as the tiny model's processor resizes)."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def improving_click_label(record: Any, shape: tuple[int, int], grid: int) -> Optional[tuple[bool, int]]:
    """StaR+'s filter: ``(positive, cell)`` of the click ``record`` holds (a
    :class:`segenv.rollout.StepRecord`) when it raised the IoU (reward > 0), the cell of the clicked
    pixel on an ``shape = (h, w)`` image; None for anything else (the oracle's answer replaces it)."""
    if record.invalid or record.action is None or not record.reward > 0:
        return None
    action = parse_action(record.action)
    if not isinstance(action, Click):
        return None
    h, w = shape
    row, col = min(int(action.y * h), h - 1), min(int(action.x * w), w - 1)
    return bool(action.positive), pixel_cell(row, col, h, w, grid)


class CellOracle:
    """The oracle clicking grid-cell centres (:func:`label_cell`); an agent for the rollout harness.

    ``label`` is the ``(positive, cell)`` of its last action and ``iou`` the IoU it was taken at;
    ``STOP`` (``Finish``) when the clicker has nothing left to fix.
    """

    needs_gt = True

    def __init__(self, grid: int) -> None:
        self.grid = grid
        self.label: Optional[tuple[bool, int]] = None
        self.iou = 0.0

    def reset(self, obs: dict, info: dict) -> None:
        self.label, self.iou = None, float(info["iou"])

    def act(self, obs: dict, info: dict) -> Any:
        self.label = label_cell(np.asarray(info["gt_mask"], bool), np.asarray(info["pred_mask"], bool), self.grid)
        self.iou = float(info["iou"])
        if self.label is None:
            return STOP
        x, y = cell_to_xy(self.label[1], self.grid)
        return Click(x, y, self.label[0])
