"""A weight-free interactive segmenter on OpenCV's GrabCut: the default for tests and demos.

Recipe (measured on the procedural sets, TOOLCHAIN.md): everything starts as probable
background; a disk of probable foreground (radius ``fg_radius`` of the working side) around
each positive click; small sure-foreground / sure-background disks at positive / negative
clicks; a box, if given, makes its inside probable foreground and its outside sure background;
``iterations`` rounds of GrabCut; finally only the connected components that touch a positive
click (or lie inside the box) are kept. It works at ``work_size`` pixels and upsamples the mask.

Honest quality note: on flat-coloured procedural objects one good positive click gives
IoU ~0.9+; on natural images (RefCOCO, DAVIS) it is far below SAM and its curves are not
monotonic (a negative click can drop part of the object). Use it for pipelines and tests, and
a SAM-family backend for numbers you publish. It has no logits: ``prev_logits`` is ignored.
"""

from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np
import numpy.typing as npt

from .base import SegmenterBase, register_segmenter


class GrabCutSegmenter(SegmenterBase):
    name = "grabcut"

    def __init__(
        self,
        work_size: int = 224,
        iterations: int = 3,
        fg_radius: float = 20 / 224,
        sure_radius: float = 4 / 224,
        keep_clicked_components: bool = True,
        seed: int = 0,
        checkpoint: Optional[str] = None,
    ) -> None:
        if checkpoint:
            raise ValueError("grabcut has no checkpoint; use 'sam:PATH' or 'hf:PATH' for a model")
        self.work_size = int(work_size)
        self.iterations = int(iterations)
        self.fg_radius = float(fg_radius)
        self.sure_radius = float(sure_radius)
        self.keep_clicked_components = keep_clicked_components
        self.seed = int(seed)
        self._work: Optional[npt.NDArray[np.uint8]] = None
        self._scale = 1.0

    def set_image(self, image: npt.NDArray[np.uint8]) -> None:
        self._check_image(image)
        h, w = image.shape[:2]
        self._scale = min(1.0, self.work_size / max(h, w))
        size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if self._scale < 1.0 else image
        self._work = np.ascontiguousarray(cv2.cvtColor(work, cv2.COLOR_RGB2BGR))

    def predict(self, points, labels, box=None, prev_logits: Any = None) -> tuple[npt.NDArray[np.bool_], None]:
        points, labels, box = self._check_prompt(points, labels, box)
        assert self._work is not None and self.image_shape is not None
        h, w = self._work.shape[:2]
        side = max(h, w)
        pts = np.clip(np.round(points * self._scale), 0, [w - 1, h - 1]).astype(int)
        pos, neg = pts[labels == 1], pts[labels != 1]
        gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        if box is not None:
            x0, y0, x1, y1 = np.round(box * self._scale).astype(int)
            gc[:] = cv2.GC_BGD
            gc[max(0, y0) : max(y0 + 1, y1), max(0, x0) : max(x0 + 1, x1)] = cv2.GC_PR_FGD
        fg_r, sure_r = max(2, round(self.fg_radius * side)), max(1, round(self.sure_radius * side))
        for x, y in pos:
            cv2.circle(gc, (int(x), int(y)), fg_r, cv2.GC_PR_FGD, -1)
        for x, y in pos:
            cv2.circle(gc, (int(x), int(y)), sure_r, cv2.GC_FGD, -1)
        for x, y in neg:
            cv2.circle(gc, (int(x), int(y)), sure_r, cv2.GC_BGD, -1)
        has_fg = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
        has_bg = np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
        if not has_fg:
            return np.zeros(self.image_shape, bool), None
        if has_bg:
            cv2.setRNGSeed(self.seed)  # GrabCut's k-means init draws from OpenCV's RNG: fix it
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(self._work, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        mask = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        if self.keep_clicked_components:
            mask = self._keep_components(mask, pos, box)
        if mask.shape != tuple(self.image_shape):
            mask = cv2.resize(mask, (self.image_shape[1], self.image_shape[0]), interpolation=cv2.INTER_NEAREST)
        return mask.astype(bool), None

    def _keep_components(self, mask: npt.NDArray[np.uint8], pos: np.ndarray, box) -> npt.NDArray[np.uint8]:
        n, comp = cv2.connectedComponents(mask, connectivity=8)
        keep = {int(comp[y, x]) for x, y in pos} - {0}
        if box is not None and not len(pos):
            keep = set(range(1, n))
        return np.isin(comp, list(keep)).astype(np.uint8) if keep else np.zeros_like(mask)


register_segmenter("grabcut")(GrabCutSegmenter)
