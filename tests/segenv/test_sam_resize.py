"""SAM's resize as segment-anything does it (docs/conventions.md#segmenter-feedback; issue #19 item 4).

segment-anything's ``ResizeLongestSide.apply_image`` resizes the longest side to 1024 with
``int(side * scale + 0.5)`` through PIL bilinear (torchvision's ``resize`` on a PIL image calls
``Image.resize((w, h), BILINEAR)``), which antialiases when it shrinks. The large DIS5K /
ThinObject5K frames are 2-4x larger than 1024, where cv2's ``INTER_LINEAR`` aliases.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from segenv.segmenters.sam_common import longest_side_shape, resize_rgb


def _pil_reference(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """What segment-anything's apply_image returns: ``np.array(resize(to_pil_image(image), (h, w)))``."""
    return np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def _large_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[::2, ::2] = 255  # 1-px structure: aliasing shows up here
    cv2.circle(img, (w // 3, h // 2), min(h, w) // 4, (20, 200, 40), 9)
    return img


@pytest.mark.parametrize("hw", [(2000, 3000), (3000, 2000)])
def test_resize_matches_pil_exactly(hw):
    h, w = hw
    img = _large_image(h, w)
    nh, nw = longest_side_shape(h, w, 1024)
    assert (nh, nw) == ((683, 1024) if w > h else (1024, 683))  # int(2000 * 1024 / 3000 + 0.5) = 683
    ours = resize_rgb(img, nh, nw)
    ref = _pil_reference(img, nh, nw)
    assert ours.shape == (nh, nw, 3) and ours.dtype == np.uint8
    assert int(np.abs(ours.astype(np.int16) - ref.astype(np.int16)).max()) == 0
    # the check can tell: cv2's INTER_LINEAR (the old path) is far from it on this image
    old = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    assert np.abs(old.astype(np.int16) - ref.astype(np.int16)).max() > 50


def test_shrinking_antialiases():
    """A 1-px checkerboard shrunk ~2.9x is uniform grey when antialiased, aliased noise when not."""
    h, w = 2000, 3000
    board = ((np.add.outer(np.arange(h), np.arange(w)) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[..., None], 3, axis=2)
    nh, nw = longest_side_shape(h, w, 1024)
    ours = resize_rgb(img, nh, nw).astype(np.float64)
    aliased = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    assert abs(ours.mean() - 127.5) < 2 and ours.std() < 10
    assert aliased.std() > 40


def test_same_size_is_untouched():
    img = _large_image(64, 48)
    assert np.array_equal(resize_rgb(img, 64, 48), img)


@pytest.mark.parametrize("kind", ["sam", "hf-sam", "hf-sam_hq", "hf-sam2"])
def test_every_backend_encodes_the_pil_resized_image(kind):
    """set_image hands the encoder the PIL-resized image: longest side (SAM, SAM-HQ) or square (SAM 2)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from segenv.segmenters import tiny
    from segenv.segmenters.hf_sam import HFSamSegmenter
    from segenv.segmenters.sam import SamSegmenter

    size = 256
    if kind == "sam":
        seg = SamSegmenter(model=tiny.tiny_sam(0, image_size=size), device="cpu")
    else:
        seg = HFSamSegmenter(model=tiny.tiny_hf_model(kind[3:], 0, image_size=size), device="cpu")
    seen = []
    seg._encode = lambda resized: seen.append(resized) or "features"  # the encoder itself is not the point
    img = _large_image(2000, 3000, seed=1)
    seg.set_image(img)
    nh, nw = (size, size) if kind == "hf-sam2" else (171, 256)  # int(2000 * 256 / 3000 + 0.5) = 171
    assert seen[0].shape == (nh, nw, 3)
    assert np.array_equal(seen[0], _pil_reference(img, nh, nw))
    assert seg._scale == (nw / 3000, nh / 2000) and seg.encoder_calls == 1
