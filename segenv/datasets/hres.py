"""HRES: the high-resolution parts of HQSeg-44K (DIS5K and ThinObject5K), as distributed for HQ-SAM.

Layout under the data root (``data_root=`` or ``$SEGAGENT_DATA``)::

    thin_object_detection/ThinObject5K/images_test/*.jpg   masks_test/*.png     split "test"
    thin_object_detection/ThinObject5K/images_train/*.jpg  masks_train/*.png    split "train"
    DIS5K/DIS-VD/im/*.jpg   DIS5K/DIS-VD/gt/*.png                               split "val" (alias "vd")
    DIS5K/DIS-TE{1..4}/im, gt                                                   splits "te1".."te4"; "test" = all four
    DIS5K/DIS-TR/im, gt                                                         split "train" (alias "tr")

Images and masks pair by file stem. The masks have soft (anti-aliased) edges; they are
binarised at 128: foreground = ``mask >= 128``. There is no ignore region.

Text: the object category parsed from the file name, as ``"the <category>"``:

* ThinObject5K names look like ``bicycle_12345.jpg`` or ``Sailboat-3.jpg``: the whole stem.
* DIS5K names look like ``1#Accessories#1#Bag#2339506821_83cf9f1d22_o.jpg``: the 4th ``#`` field
  (here ``Bag``), falling back to the 2nd field.

The category is lowercased, CamelCase / ``_`` / ``-`` become spaces, and trailing digits are
stripped (``Sailboat-3`` -> ``the sailboat``, ``Tower_Crane`` -> ``the tower crane``).

This module also holds :class:`PairedFolderDataset` (an image folder plus a mask folder paired by
stem), reused by :mod:`segenv.datasets.classic`.
"""

from __future__ import annotations

import operator
import re
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import numpy.typing as npt

from .base import DatasetNotFoundError, Sample, mask_box, register_dataset, require_paths
from .base import data_root as resolve_root
from .image_io import SkippedFile, bad_name_reason, display_path, read_gray, read_rgb

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")

MaskDecoder = Callable[[Path], "tuple[npt.NDArray[np.bool_], Optional[npt.NDArray[np.bool_]]]"]


def check_index(index: int, length: int) -> int:
    """Normalise a (possibly negative) integer index, raising IndexError when out of range."""
    i = operator.index(index)
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"index {index} out of range for a dataset of length {length}")
    return i


def _list_files(folder: Path, exts: Sequence[str], what: str, skipped: list[SkippedFile]) -> list[Path]:
    """Files of ``folder`` with one of ``exts``, sorted by name; unusable names go to ``skipped``."""
    found = []
    for p in folder.iterdir():
        if not (p.suffix.lower() in exts and p.is_file()):
            continue
        reason = bad_name_reason(p)
        if reason is None:
            found.append(p)
        else:
            skipped.append(SkippedFile(display_path(p), f"{what}: {reason}"))
    return sorted(found, key=lambda p: p.name)


def pair_folder(
    name: str,
    root: Path,
    image_dir: Path,
    mask_dir: Path,
    layout: str,
    image_exts: Sequence[str] = IMAGE_EXTS,
    mask_exts: Sequence[str] = (".png",),
) -> tuple[list[tuple[Path, Path]], list[SkippedFile]]:
    """``(pairs, skipped)``: ``(image, mask)`` pairs for every image in ``image_dir``, sorted by file
    name, and the files left out because their names are unusable (not valid UTF-8).

    Raises :class:`DatasetNotFoundError` when a folder is missing, the image folder has no usable
    image, or some image has no mask with the same stem (the message lists the first few).
    """
    require_paths(name, root, {"images": image_dir, "masks": mask_dir}, layout)
    skipped: list[SkippedFile] = []
    images = _list_files(image_dir, image_exts, "image", skipped)
    if not images:
        also = f" ({len(skipped)} skipped: {skipped[0].reason})" if skipped else ""
        raise DatasetNotFoundError(
            f"{name}: no images ({', '.join(image_exts)}) in {display_path(image_dir)}{also}"
            f"\nExpected layout:\n{layout}"
        )
    masks: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(mask_exts)}
    for p in _list_files(mask_dir, mask_exts, "mask", skipped):
        old = masks.get(p.stem)
        if old is None or rank[p.suffix.lower()] < rank[old.suffix.lower()]:
            masks[p.stem] = p
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise DatasetNotFoundError(
            f"{name}: {len(missing)} image(s) in {display_path(image_dir)} have no mask ({'/'.join(mask_exts)}) "
            f"with the same name in {display_path(mask_dir)}: {shown}\nExpected layout:\n{layout}"
        )
    return [(p, masks[p.stem]) for p in images], skipped


class PairedFolderDataset:
    """Images and masks paired by file stem; images are read lazily in ``__getitem__``.

    ``decode_mask(path) -> (mask, ignore_or_None)`` turns a mask file into booleans;
    ``text_fn(stem) -> str`` gives the referring text. Sample ids are ``"<name>/<split>/<stem>"``.
    ``skipped`` lists the files :func:`pair_folder` left out (kept as ``self.skipped``); a
    non-empty list is reported once with a :class:`UserWarning`.
    """

    def __init__(
        self,
        name: str,
        split: str,
        pairs: Sequence[tuple[Path, Path]],
        decode_mask: MaskDecoder,
        text_fn: Callable[[str], str],
        skipped: Sequence[SkippedFile] = (),
    ) -> None:
        self.name = name
        self.split = split
        self._pairs = list(pairs)
        self._decode_mask = decode_mask
        self._text_fn = text_fn
        self.skipped: list[SkippedFile] = list(skipped)
        if self.skipped:
            shown = "; ".join(f"{s.path} ({s.reason})" for s in self.skipped[:3])
            more = f"; ... ({len(self.skipped)} in all)" if len(self.skipped) > 3 else ""
            message = f"{name}/{split}: skipped {len(self.skipped)} file(s): {shown}{more}"
            warnings.warn(message, UserWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def sample_ids(self) -> list[str]:
        return [f"{self.name}/{self.split}/{img.stem}" for img, _ in self._pairs]

    @property
    def files(self) -> list[tuple[Path, Path]]:
        """The ``(image, mask)`` file pairs, in sample order."""
        return list(self._pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask_path = self._pairs[check_index(index, len(self))]
        image = read_rgb(image_path)
        mask, ignore = self._decode_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{self.name}: mask {mask_path} has shape {mask.shape}, image {image_path} has {image.shape[:2]}"
            )
        stem = image_path.stem
        return Sample(
            id=f"{self.name}/{self.split}/{stem}",
            image=image,
            mask=mask,
            text=self._text_fn(stem),
            box=mask_box(mask),
            ignore=ignore,
            meta={"image_path": str(image_path), "mask_path": str(mask_path)},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, len={len(self)})"


def binarize_128(path: Path) -> tuple[npt.NDArray[np.bool_], None]:
    """HRES mask decoding: foreground = gray value >= 128, no ignore region."""
    return read_gray(path) >= 128, None


def clean_category(raw: str) -> str:
    """``"Tower_Crane-12"`` -> ``"tower crane"``; ``"object"`` if nothing is left."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", raw)
    text = re.sub(r"[_\-]+", " ", text).lower()
    text = re.sub(r"[\s\d]+$", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text or "object"


def thinobject_category(stem: str) -> str:
    """ThinObject5K: the stem itself (``bicycle_12345`` -> ``bicycle``)."""
    return clean_category(stem)


def dis_category(stem: str) -> str:
    """DIS5K: the 4th ``#`` field, else the 2nd, else the stem."""
    fields = stem.split("#")
    if len(fields) >= 4 and fields[3].strip():
        return clean_category(fields[3])
    if len(fields) >= 2 and fields[1].strip():
        return clean_category(fields[1])
    return clean_category(stem)


THIN_LAYOUT = """<root>/thin_object_detection/ThinObject5K/
  images_test/*.jpg   masks_test/*.png    (split "test")
  images_train/*.jpg  masks_train/*.png   (split "train")"""

DIS_LAYOUT = """<root>/DIS5K/
  DIS-VD/im/*.jpg  DIS-VD/gt/*.png        (split "val")
  DIS-TE1..DIS-TE4/im, gt                 (splits "te1".."te4", "test" = all four)
  DIS-TR/im, gt                           (split "train")"""

_THIN_SPLITS = {"test": "test", "te": "test", "val": "test", "train": "train", "tr": "train"}
_DIS_SPLITS = {
    "val": ("val", ["DIS-VD"]),
    "vd": ("val", ["DIS-VD"]),
    **{f"te{k}": (f"te{k}", [f"DIS-TE{k}"]) for k in range(1, 5)},
    "test": ("test", [f"DIS-TE{k}" for k in range(1, 5)]),
    "train": ("train", ["DIS-TR"]),
    "tr": ("train", ["DIS-TR"]),
}


class ThinObject5K(PairedFolderDataset):
    """ThinObject5K (HQSeg-44K). Splits: ``"test"`` (``"val"`` is an alias: there is no val
    split and the test split is the one evaluated) and ``"train"``."""

    def __init__(self, split: str = "test", data_root: Optional[str | Path] = None) -> None:
        key = str(split).lower()
        if key not in _THIN_SPLITS:
            raise ValueError(f"thinobject5k: unknown split {split!r}; use 'test' or 'train'")
        split = _THIN_SPLITS[key]
        root = resolve_root(data_root)
        base = root / "thin_object_detection" / "ThinObject5K"
        pairs, skipped = pair_folder(
            "thinobject5k", root, base / f"images_{split}", base / f"masks_{split}", THIN_LAYOUT
        )
        super().__init__(
            "thinobject5k", split, pairs, binarize_128, lambda s: "the " + thinobject_category(s), skipped
        )


class DIS5K(PairedFolderDataset):
    """DIS5K (HQSeg-44K). Splits: ``"val"``/``"vd"`` (DIS-VD), ``"te1"``..``"te4"``, ``"test"``
    (TE1-TE4 together) and ``"train"``/``"tr"`` (DIS-TR)."""

    def __init__(self, split: str = "val", data_root: Optional[str | Path] = None) -> None:
        key = str(split).lower()
        if key not in _DIS_SPLITS:
            raise ValueError(f"dis5k: unknown split {split!r}; use one of {sorted(_DIS_SPLITS)}")
        split, folders = _DIS_SPLITS[key]
        root = resolve_root(data_root)
        pairs: list[tuple[Path, Path]] = []
        skipped: list[SkippedFile] = []
        for folder in folders:
            base = root / "DIS5K" / folder
            folder_pairs, folder_skipped = pair_folder("dis5k", root, base / "im", base / "gt", DIS_LAYOUT)
            pairs += folder_pairs
            skipped += folder_skipped
        super().__init__("dis5k", split, pairs, binarize_128, lambda s: "the " + dis_category(s), skipped)


@register_dataset("thinobject5k")
def make_thinobject5k(split: str = "test", data_root: Optional[str | Path] = None, **_) -> ThinObject5K:
    return ThinObject5K(split=split, data_root=data_root)


@register_dataset("dis5k")
def make_dis5k(split: str = "val", data_root: Optional[str | Path] = None, **_) -> DIS5K:
    return DIS5K(split=split, data_root=data_root)
