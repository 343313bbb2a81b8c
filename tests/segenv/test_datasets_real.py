"""Loaders for the real dataset layouts, checked on tiny fixtures written into tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import fixtures_real as fx  # noqa: E402  (tests/, on sys.path by pyproject.toml's pytest pythonpath)

from segenv.datasets import DatasetNotFoundError, make_dataset, mask_box  # noqa: E402
from segenv.datasets.classic import CLASSIC_TEXT  # noqa: E402
from segenv.datasets.hres import clean_category, dis_category, thinobject_category  # noqa: E402
from segenv.datasets.refcoco import decode_segmentation  # noqa: E402


@pytest.fixture(scope="module")
def root(real_data_root) -> Path:
    return real_data_root


def _check_sample(s) -> None:
    assert s.image.dtype == np.uint8 and s.image.shape == (fx.H, fx.W, 3)
    assert s.mask.dtype == bool and s.mask.shape == (fx.H, fx.W)
    assert s.box == mask_box(s.mask)


def _iou(a, b) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


# --- RefCOCO family ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["refcoco", "refcoco+", "refcocog"])
def test_refcoco_val(root, name):
    ds = make_dataset(name, split="val", data_root=root)
    assert ds.name == name and len(ds) == 4
    ids = [f"{name}/val/{r}/{s}" for r in (100, 101) for s, _ in fx.REF_SENTENCES[r][3]]
    assert ds.sample_ids == ids
    for i, (ref_id, sent_id) in enumerate([(100, 1000), (100, 1001), (101, 1010), (101, 1011)]):
        s = ds[i]
        _check_sample(s)
        assert s.id == ids[i]
        sent = dict(fx.REF_SENTENCES[ref_id][3])[sent_id]
        assert s.text == fx.refcoco_text(name, sent)
        ann_id = fx.REF_SENTENCES[ref_id][0]
        assert s.meta["ann_id"] == ann_id and s.meta["ref_id"] == ref_id
        expected = fx.refcoco_expected(ann_id)
        if ann_id == 10:  # polygon: rasterisation differs slightly between cv2 and pycocotools
            assert _iou(s.mask, expected) > 0.9
        else:
            np.testing.assert_array_equal(s.mask, expected)
    assert ds[-1].id == ids[-1]
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(IndexError):
        ds[-5]


def test_refcoco_other_splits_and_uncompressed_rle(root):
    for name, split in (("refcoco", "testA"), ("refcoco+", "testa"), ("refcocog", "test")):
        ds = make_dataset(name, split=split, data_root=root)
        assert len(ds) == 1
        s = ds[0]
        assert s.id == f"{name}/{ds.split}/102/1020"
        np.testing.assert_array_equal(s.mask, fx.uncompressed_mask())  # image 3: no file_name
        assert s.box == (0, 0, 29, 30)
    assert len(make_dataset("refcoco", split="train", data_root=root)) == 1
    with pytest.raises(ValueError, match="testB"):
        make_dataset("refcoco", split="testB", data_root=root)


def test_decode_segmentation_formats():
    from pycocotools import mask as mask_utils

    m = fx.rle_mask()
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    np.testing.assert_array_equal(decode_segmentation(rle, fx.H, fx.W), m)  # bytes counts
    rle["counts"] = rle["counts"].decode()
    np.testing.assert_array_equal(decode_segmentation(rle, fx.H, fx.W), m)  # str counts
    assert not decode_segmentation([[1, 2, 3, 4]], fx.H, fx.W).any()  # degenerate polygon


def test_refcoco_missing_and_corrupt(root, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"refs\(unc\)\.p"):
        make_dataset("refcoco", data_root=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"refs\(google\)\.p"):
        make_dataset("refcocog", data_root=root, split_by="google")

    bad = tmp_path / "bad"
    fx.write_refcoco(bad)
    refs = bad / "refer_seg" / "refcoco" / "refs(unc).p"
    refs.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p"):
        make_dataset("refcoco", data_root=bad)
    inst = bad / "refer_seg" / "refcoco+" / "instances.json"
    inst.write_text("{broken")
    with pytest.raises(ValueError, match="instances.json"):
        make_dataset("refcoco+", data_root=bad)
    img = bad / "refer_seg" / "images" / "mscoco" / "images" / "train2014" / "COCO_train2014_000000000001.jpg"
    img.write_bytes(b"garbage")
    ds = make_dataset("refcocog", data_root=bad)
    with pytest.raises(ValueError, match="COCO_train2014_000000000001.jpg"):
        ds[0]


def test_refcoco_python2_style_pickle(tmp_path):
    fx.write_refcoco(tmp_path)
    path = tmp_path / "refer_seg" / "refcoco" / "refs(unc).p"
    refs = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps(refs, protocol=2))
    assert len(make_dataset("refcoco", data_root=tmp_path)) == 4


# --- HRES ---------------------------------------------------------------------------------


def test_category_parsing():
    assert thinobject_category("bicycle_12345") == "bicycle"
    assert thinobject_category("Sailboat-3") == "sailboat"
    assert dis_category("1#Accessories#1#Bag#2339506821_83cf9f1d22_o") == "bag"
    assert dis_category("3#Aircraft#2") == "aircraft"
    assert clean_category("Tower_Crane-12") == "tower crane"
    assert clean_category("123") == "object"


@pytest.mark.parametrize(
    "name,split,expected",
    [
        ("thinobject5k", "test", fx.THIN_TEST),
        ("thinobject5k", "train", fx.THIN_TRAIN),
        ("dis5k", "val", fx.DIS_VD),
        ("dis5k", "te1", fx.DIS_TE1),
    ],
)
def test_hres(root, name, split, expected):
    ds = make_dataset(name, split=split, data_root=root)
    stems = sorted(expected)
    assert len(ds) == len(stems)
    assert ds.sample_ids == [f"{name}/{split}/{s}" for s in stems]
    for i, stem in enumerate(stems):
        s = ds[i]
        _check_sample(s)
        assert s.id == f"{name}/{split}/{stem}"
        assert s.text == expected[stem]
        np.testing.assert_array_equal(s.mask, fx.hres_expected(i))
        assert s.ignore is None
    assert ds[-len(stems)].id == ds[0].id
    with pytest.raises(IndexError):
        ds[len(stems)]


def test_hres_errors(root, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="images_test"):
        make_dataset("thinobject5k", data_root=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="DIS-TE2"):
        make_dataset("dis5k", split="test", data_root=root)
    with pytest.raises(ValueError, match="split"):
        make_dataset("dis5k", split="nope", data_root=root)

    fx.write_hres(tmp_path)
    gt = tmp_path / "DIS5K" / "DIS-VD" / "gt"
    (gt / "7#Electrical#3#TowerCrane#42.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="TowerCrane#42.jpg"):
        make_dataset("dis5k", data_root=tmp_path)
    img = tmp_path / "thin_object_detection" / "ThinObject5K" / "images_test" / "Sailboat-3.jpg"
    img.write_bytes(b"not a jpeg")
    ds = make_dataset("thinobject5k", data_root=tmp_path)
    with pytest.raises(ValueError, match="Sailboat-3.jpg"):
        ds[0]


# --- classic ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,stems", [("grabcut", fx.GRABCUT), ("berkeley", fx.BERKELEY)])
def test_band_datasets(root, name, stems):
    ds = make_dataset(name, data_root=root)
    assert len(ds) == 2 and ds.name == name
    for i, stem in enumerate(stems):
        s = ds[i]
        _check_sample(s)
        assert s.id == f"{name}/test/{stem}" and s.text == CLASSIC_TEXT
        painted = fx.band_mask(i)
        np.testing.assert_array_equal(s.mask, painted == 255)
        np.testing.assert_array_equal(s.ignore, painted == 128)
        assert s.ignore.any() and not (s.ignore & s.mask).any()


def test_davis(root):
    ds = make_dataset("davis", data_root=root)
    assert ds.sample_ids == [f"davis/test/{s}" for s in fx.DAVIS]
    for i in range(2):
        s = ds[i]
        _check_sample(s)
        assert s.ignore is None and s.mask.any()
        np.testing.assert_array_equal(s.mask, fx.davis_expected(i))


def test_sbd(root):
    ds = make_dataset("sbd", data_root=root)
    assert ds.sample_ids == ["sbd/val/2008_000002/1", "sbd/val/2008_000002/2", "sbd/val/2008_000003/1"]
    cats = ["person", "dog", "car"]
    for i, (stem, k) in enumerate([("2008_000002", 1), ("2008_000002", 2), ("2008_000003", 1)]):
        s = ds[i]
        _check_sample(s)
        np.testing.assert_array_equal(s.mask, fx.sbd_segmentation(stem) == k)
        assert s.meta["category"] == cats[i] and s.text == CLASSIC_TEXT
    assert ds[-1].id == "sbd/val/2008_000003/1"


def test_classic_errors(tmp_path):
    for name, missing in (("grabcut", "boundary_GT"), ("berkeley", "masks"), ("davis", "gt"), ("sbd", "val.txt")):
        with pytest.raises(DatasetNotFoundError, match=missing):
            make_dataset(name, data_root=tmp_path)
    fx.write_classic(tmp_path)
    (tmp_path / "Berkeley" / "masks" / "12003.png").write_bytes(b"junk")
    ds = make_dataset("berkeley", data_root=tmp_path)
    with pytest.raises(ValueError, match="12003.png"):
        ds[0]
    (tmp_path / "SBD" / "dataset" / "inst" / "2008_000003.mat").write_bytes(b"junk")
    with pytest.raises(ValueError, match="2008_000003.mat"):
        make_dataset("sbd", data_root=tmp_path)
