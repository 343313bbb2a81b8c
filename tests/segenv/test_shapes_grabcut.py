"""The procedural datasets and the GrabCut segmenter."""

from __future__ import annotations

import numpy as np
import pytest

from segenv.datasets import make_dataset
from segenv.datasets.shapes import COLORS, ShapesDataset, object_masks, parse_expression
from segenv.segmenters import GrabCutSegmenter, Prompt, make_segmenter


def test_deterministic_and_splits_disjoint():
    a, b = ShapesDataset("train", seed=0), ShapesDataset("train", seed=0)
    for i in (0, 7, 123):
        sa, sb = a[i], b[i]
        assert sa.text == sb.text and np.array_equal(sa.image, sb.image) and np.array_equal(sa.mask, sb.mask)
    test = ShapesDataset("test")
    assert not np.array_equal(a[0].image, test[0].image)
    assert len(test) == 500 and len(ShapesDataset("val", length=10)) == 10
    with pytest.raises(IndexError):
        test[500]
    assert test[-1].id == test[499].id


@pytest.mark.parametrize("thin", [False, True])
def test_expression_identifies_the_target_uniquely(thin):
    ds = ShapesDataset("test", thin=thin)
    for i in range(60):
        s = ds[i]
        parts = parse_expression(s.text)
        objects = s.meta["objects"]
        target = objects[s.meta["target"]]
        matches = [
            o for o in objects
            if (parts["shape"] in ("object", o["shape"]))
            and parts["color"] in (None, o["color"])
            and parts["size"] in (None, o["size"])
        ]
        assert target in matches
        if len(matches) > 1:  # look-alikes: a spatial phrase must be present to decide
            assert parts["side"] or parts["end"] or parts["rel"], s.text
        assert s.mask.any() and s.mask.dtype == bool and s.image.dtype == np.uint8
        x0, y0, x1, y1 = s.box
        assert s.mask[y0:y1, x0:x1].sum() == s.mask.sum()


def test_target_colour_is_what_the_text_says():
    ds = ShapesDataset("val")
    for i in range(30):
        s = ds[i]
        colour = s.meta["objects"][s.meta["target"]]["color"]
        mean = s.image[s.mask].mean(axis=0)
        nearest = min(COLORS, key=lambda c: np.linalg.norm(mean - np.array(COLORS[c])))
        assert nearest == colour


@pytest.mark.parametrize("thin", [False, True])
def test_object_masks_are_the_visible_objects_and_the_target_is_the_ground_truth(thin):
    ds = ShapesDataset("val", thin=thin)
    for i in range(15):
        s = ds[i]
        masks = object_masks(s)
        assert len(masks) == len(s.meta["objects"]) >= 2
        assert (masks[s.meta["target"]] == s.mask).all()
        stacked = np.stack(masks).astype(int)
        assert stacked.sum(0).max() == 1  # each pixel shows at most one object
        assert all(m.any() for m in masks)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        ShapesDataset("dev")
    with pytest.raises(ValueError, match="num_objects"):
        ShapesDataset("test", num_objects=(0, 3))
    with pytest.raises(ValueError, match="expression"):
        parse_expression("please segment the cat")
    assert make_dataset("thin_shapes", split="val").name == "thin_shapes"


def _centre(mask):
    import cv2

    d = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    r, c = np.unravel_index(np.argmax(d), d.shape)
    return float(c) + 0.5, float(r) + 0.5


def test_grabcut_one_click_segments_a_flat_object():
    s = ShapesDataset("test")[0]
    seg = make_segmenter("grabcut")
    seg.set_image(s.image)
    x, y = _centre(s.mask)
    mask, logits = seg.predict(np.array([[x, y]], np.float32), np.array([1]))
    assert mask.shape == s.mask.shape and mask.dtype == bool
    assert logits.dtype == bool and logits.shape == (224, 224)  # the working-size mask, fed back next step
    inter, union = (mask & s.mask).sum(), (mask | s.mask).sum()
    assert inter / union > 0.8
    # deterministic (GrabCut's k-means is seeded) and predict_many equals looped predicts
    again, _ = seg.predict(np.array([[x, y]], np.float32), np.array([1]))
    assert np.array_equal(mask, again)
    many = seg.predict_many([Prompt(np.array([[x, y]], np.float32), np.array([1])), Prompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.array(s.box, np.float32))])
    assert np.array_equal(many[0][0], mask) and many[1][0].any()


def test_grabcut_edge_cases():
    seg = GrabCutSegmenter()
    with pytest.raises(RuntimeError, match="set_image"):
        seg.predict(np.array([[1, 1]], np.float32), np.array([1]))
    with pytest.raises(ValueError, match="HxWx3"):
        seg.set_image(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        seg.set_image(np.zeros((8, 8, 3), np.float32))
    seg.set_image(np.zeros((40, 50, 3), np.uint8))
    only_negative, _ = seg.predict(np.array([[3, 3]], np.float32), np.array([0]))
    assert not only_negative.any()
    with pytest.raises(ValueError, match="point or a box"):
        seg.predict(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="labels"):
        seg.predict(np.array([[3, 3]], np.float32), np.array([1, 0]))
    with pytest.raises(ValueError, match="checkpoint"):
        make_segmenter("grabcut:/some/file.pth")
