"""Tiny on-disk fixtures in the real dataset layouts (RefCOCO family, HRES, RITM classic sets).

``write_refcoco(root)``, ``write_hres(root)`` and ``write_classic(root)`` each create everything
the corresponding registered datasets need under ``root`` (use it as ``data_root=``):

* refcoco / refcoco+ (``refs(unc).p``) and refcocog (``refs(umd).p``): 2 refs x 2 sentences in
  ``val``, 1 ref x 1 sentence in ``testA`` (refcocog: ``test``), 1 ref in ``train``; one polygon,
  one compressed-RLE and one uncompressed-RLE annotation.
* thinobject5k (``test`` and ``train``), dis5k (``val`` = DIS-VD and ``te1``).
* grabcut, berkeley, davis (2 images each) and sbd (``val``: 2 images, 3 instances).

The module-level constants and ``*_expected`` helpers say exactly what was drawn.
``write_odd_named_pair(root, name)`` adds an image/mask pair whose file names are not valid UTF-8.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np

H, W = 32, 40

# --- RefCOCO family ---------------------------------------------------------------------------

# image 1: polygon annotation 10; image 2: compressed RLE annotation 11 (file_name given);
# image 3: uncompressed RLE annotation 12 with no file_name (train2014 naming fallback).
POLYGON = [6.0, 4.0, 34.0, 6.0, 30.0, 27.0, 8.0, 24.0]  # x0, y0, x1, y1, ... (COCO order)
REF_SENTENCES = {  # ref_id -> (ann_id, image_id, split, [(sent_id, sent), ...])
    100: (10, 1, "val", [(1000, "the left shape"), (1001, "polygon thing")]),
    101: (11, 2, "val", [(1010, "the painted box"), (1011, "a square")]),
    102: (12, 3, "testA", [(1020, "the bar on the right")]),
    103: (10, 1, "train", [(1030, "training sentence")]),
}
REFCOCOG_SPLIT = {"val": "val", "testA": "test", "train": "train"}


def polygon_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    pts = np.round(np.array(POLYGON).reshape(-1, 2)).astype(np.int32)
    cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def rle_mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:20, 5:17] = True
    m[3:6, 30:33] = True  # two components
    return m


def uncompressed_mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[2:30, 25:29] = True
    m[0, 0] = True  # the very first pixel, so the RLE starts with a zero-length run
    return m


def refcoco_expected(ann_id: int) -> np.ndarray:
    return {10: polygon_mask, 11: rle_mask, 12: uncompressed_mask}[ann_id]()


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = int(v), 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _image(seed: int) -> np.ndarray:
    """A smooth BGR test image (smooth so JPEG keeps it close)."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 6 + seed * 20, yy * 7, (xx + yy) * 3 + seed * 40], axis=-1)
    return (img % 256).astype(np.uint8)


def _instances() -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(rle_mask().astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return {
        "images": [
            {"id": 1, "height": H, "width": W, "file_name": "COCO_train2014_000000000001.jpg"},
            {"id": 2, "height": H, "width": W, "file_name": "COCO_train2014_000000000002.jpg"},
            {"id": 3, "height": H, "width": W},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [POLYGON]},
            {"id": 11, "image_id": 2, "category_id": 2, "iscrowd": 0, "segmentation": rle},
            {"id": 12, "image_id": 3, "category_id": 3, "iscrowd": 1,
             "segmentation": _uncompressed_rle(uncompressed_mask())},
        ],  # fmt: skip
        "categories": [{"id": k, "name": f"cat{k}"} for k in (1, 2, 3)],
    }


def _refs(dataset: str) -> list[dict]:
    refs = []
    for ref_id, (ann_id, image_id, split, sents) in REF_SENTENCES.items():
        if dataset == "refcocog":
            split = REFCOCOG_SPLIT[split]
        refs.append({
            "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": 1,
            "sent_ids": [s for s, _ in sents],
            "sentences": [{"sent": f"{t} ({dataset})", "raw": t.capitalize(), "sent_id": s,
                           "tokens": t.split()} for s, t in sents],
        })  # fmt: skip
    return refs


def refcoco_text(dataset: str, sent: str) -> str:
    """The ``sent`` written for ``dataset`` (sentences differ per dataset)."""
    return f"{sent} ({dataset})"


def write_refcoco(root) -> None:
    refer = Path(root) / "refer_seg"
    img_dir = refer / "images" / "mscoco" / "images" / "train2014"
    img_dir.mkdir(parents=True, exist_ok=True)
    for image_id in (1, 2, 3):
        cv2.imwrite(str(img_dir / f"COCO_train2014_{image_id:012d}.jpg"), _image(image_id))
    for dataset, split_by in (("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")):
        d = refer / dataset
        d.mkdir(parents=True, exist_ok=True)
        (d / "instances.json").write_text(json.dumps(_instances()))
        with open(d / f"refs({split_by}).p", "wb") as f:
            pickle.dump(_refs(dataset), f)


# --- HRES ---------------------------------------------------------------------------------

THIN_TEST = {"bicycle_12345": "the bicycle", "Sailboat-3": "the sailboat"}
THIN_TRAIN = {"Tower_crane_7": "the tower crane"}
DIS_VD = {
    "1#Accessories#1#Bag#2339506821_83cf9f1d22_o": "the bag",
    "7#Electrical#3#TowerCrane#42": "the tower crane",
}
DIS_TE1 = {"12#Furniture#2#Chair#9": "the chair"}


def soft_mask(seed: int) -> np.ndarray:
    """uint8 mask with 0, 255 and soft edge values (100, 127, 128, 200)."""
    m = np.zeros((H, W), np.uint8)
    y0, x0 = 4 + seed % 5, 6 + (seed * 3) % 7
    m[y0 : y0 + 14, x0 : x0 + 18] = 255
    m[y0 - 1, x0 : x0 + 18] = 127  # below threshold
    m[y0 + 14, x0 : x0 + 18] = 128  # exactly at threshold: foreground
    m[y0 : y0 + 14, x0 - 1] = 200
    m[y0 : y0 + 14, x0 + 18] = 100
    return m


def hres_expected(seed: int) -> np.ndarray:
    return soft_mask(seed) >= 128


def _write_pairs(img_dir: Path, mask_dir: Path, stems, img_ext=".jpg", mask_ext=".png", mask_fn=soft_mask) -> None:
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate(sorted(stems)):
        cv2.imwrite(str(img_dir / f"{stem}{img_ext}"), _image(seed))
        cv2.imwrite(str(mask_dir / f"{stem}{mask_ext}"), mask_fn(seed))


def write_hres(root) -> None:
    """Masks: the i-th stem in sorted order gets ``soft_mask(i)``."""
    root = Path(root)
    thin = root / "thin_object_detection" / "ThinObject5K"
    _write_pairs(thin / "images_test", thin / "masks_test", THIN_TEST)
    _write_pairs(thin / "images_train", thin / "masks_train", THIN_TRAIN)
    dis = root / "DIS5K"
    _write_pairs(dis / "DIS-VD" / "im", dis / "DIS-VD" / "gt", DIS_VD)
    _write_pairs(dis / "DIS-TE1" / "im", dis / "DIS-TE1" / "gt", DIS_TE1)


# --- classic (RITM layouts) ---------------------------------------------------------------

GRABCUT = ("banana1", "teddy")  # images .bmp / .jpg, masks .bmp
BERKELEY = ("12003", "24077")
DAVIS = ("bear_00000", "camel_00010")
SBD_VAL = {"2008_000002": (1, 2), "2008_000003": (1,)}  # stem -> instance ids present
SBD_CATEGORIES = {"2008_000002": [15, 12], "2008_000003": [7]}  # VOC ids: person, dog; car


def band_mask(seed: int) -> np.ndarray:
    """uint8 mask: 255 object, a 2-pixel 128 band around it, 0 elsewhere."""
    m = np.zeros((H, W), np.uint8)
    y0, x0 = 5 + seed, 7 + 2 * seed
    m[y0 - 2 : y0 + 16, x0 - 2 : x0 + 20] = 128
    m[y0 : y0 + 14, x0 : x0 + 16] = 255
    return m


def davis_mask(seed: int) -> np.ndarray:
    """3-channel BGR mask; seed 1 is pure red (only the last BGR channel is non-zero)."""
    m = np.zeros((H, W, 3), np.uint8)
    m[6 + seed : 20 + seed, 4 : 30 - seed, 2] = 200
    if seed == 0:
        m[..., 0] = m[..., 1] = m[..., 2]
    return m


def davis_expected(seed: int) -> np.ndarray:
    return davis_mask(seed).max(axis=2) > 0


def sbd_segmentation(stem: str) -> np.ndarray:
    seg = np.zeros((H, W), np.uint8)
    seg[2:12, 3:15] = 1
    if 2 in SBD_VAL[stem]:
        seg[15:30, 20:38] = 2
    seg[12, :] = 255 if stem == "2008_000002" else 0  # a boundary-like 255 line (not an instance)
    return seg


def write_classic(root) -> None:
    """GrabCut/Berkeley masks: the i-th stem gets ``band_mask(i)``; DAVIS: ``davis_mask(i)``."""
    from scipy.io import savemat

    root = Path(root)
    gc = root / "GrabCut"
    (gc / "data_GT").mkdir(parents=True, exist_ok=True)
    (gc / "boundary_GT").mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate(GRABCUT):
        ext = ".bmp" if seed == 0 else ".jpg"
        cv2.imwrite(str(gc / "data_GT" / f"{stem}{ext}"), _image(seed))
        cv2.imwrite(str(gc / "boundary_GT" / f"{stem}.bmp"), band_mask(seed))
    _write_pairs(root / "Berkeley" / "images", root / "Berkeley" / "masks", BERKELEY, mask_fn=band_mask)
    _write_pairs(root / "DAVIS" / "img", root / "DAVIS" / "gt", DAVIS, mask_fn=davis_mask)

    sbd = root / "SBD" / "dataset"
    (sbd / "img").mkdir(parents=True, exist_ok=True)
    (sbd / "inst").mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate(SBD_VAL):
        cv2.imwrite(str(sbd / "img" / f"{stem}.jpg"), _image(seed))
        seg = sbd_segmentation(stem)
        cats = np.array(SBD_CATEGORIES[stem], np.uint8).reshape(-1, 1)
        gtinst = {"Segmentation": seg, "Boundaries": np.zeros((len(cats), 1), object), "Categories": cats}
        savemat(str(sbd / "inst" / f"{stem}.mat"), {"GTinst": gtinst})
    (sbd / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    (sbd / "train.txt").write_text("\n".join(SBD_VAL) + "\n")


# --- odd file names -------------------------------------------------------------------------

#: Image and mask folders (relative to the data root) of the folder-paired loaders' default split.
PAIRED_DIRS = {
    "grabcut": ("GrabCut/data_GT", "GrabCut/boundary_GT"),
    "berkeley": ("Berkeley/images", "Berkeley/masks"),
    "davis": ("DAVIS/img", "DAVIS/gt"),
    "dis5k": ("DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt"),
    "thinobject5k": ("thin_object_detection/ThinObject5K/images_test", "thin_object_detection/ThinObject5K/masks_test"),
}
ODD_STEM = b"\xff\xfe"  # not valid UTF-8: Python names it "\udcff\udcfe"


def write_odd_named_pair(root, name: str, stem: bytes = ODD_STEM) -> None:
    """Copy the first image and mask of ``name``'s folders to ``<stem>.<ext>`` (a bytes file name).

    Created with ``os.open`` on bytes paths, so the name on disk is exactly ``stem`` (Linux).
    """
    import os

    for rel in PAIRED_DIRS[name]:
        folder = Path(root) / rel
        first = sorted(p for p in folder.iterdir() if p.is_file())[0]
        target = os.path.join(os.fsencode(folder), stem + os.fsencode(first.suffix))
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, first.read_bytes())
        finally:
            os.close(fd)
