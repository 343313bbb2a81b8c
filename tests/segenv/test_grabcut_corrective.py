"""GrabCut answers corrective clicks: a negative click beside a thin structure never empties the mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segenv.segmenters.grabcut import GrabCutSegmenter


def thin_frame(size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """A 2-px orange square frame on a dim noisy background, and its mask."""
    rng = np.random.default_rng(0)
    image = (rng.normal(70, 6, (size, size, 3))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cv2.rectangle(mask, (60, 60), (160, 160), 1, 2)
    image[mask.astype(bool)] = (245, 140, 30)
    return image, mask.astype(bool)


@pytest.mark.parametrize("offset", [2, 3, 4])
def test_negative_click_next_to_frame_keeps_mask(offset):
    image, gt = thin_frame()
    seg = GrabCutSegmenter()
    seg.set_image(image)
    row, col = 110, 60  # on the frame's left bar
    assert gt[row, col]
    mask1, logits1 = seg.predict(np.array([[col, row]], np.float32), np.array([1]))
    assert mask1[row, col]
    # the corrective click: background, `offset` px left of the bar (inside the old sure radius)
    points = np.array([[col, row], [col - offset, row]], np.float32)
    mask2, _ = seg.predict(points, np.array([1, 0]), prev_logits=logits1)
    assert mask2.any(), "a negative click emptied a mask that has a positive click"
    assert mask2[row, col], "the positive clicked pixel lost its label"
    assert not mask2[row, col - offset], "the negative clicked pixel lost its label"
    inter = (mask2 & gt).sum() / (mask2 | gt).sum()
    assert inter > 0.5


def test_clicked_pixel_is_floor_of_point():
    """Point (col, row) is pixel (row, col) (points are pixel indices, as SAM's predictor takes them)."""
    image, gt = thin_frame()
    seg = GrabCutSegmenter()
    seg.set_image(image)
    for col in (60, 61):  # both pixels of the 2-px bar
        mask, _ = seg.predict(np.array([[col, 110]], np.float32), np.array([1]))
        assert mask[110, col]
