"""Classic interactive-segmentation benchmarks in the RITM toolkit's layouts.

Layout under the data root (``data_root=`` or ``$SEGAGENT_DATA``)::

    GrabCut/data_GT/*.{jpg,bmp,png}   GrabCut/boundary_GT/*.{bmp,png}   (50 images)
    Berkeley/images/*.jpg             Berkeley/masks/*.png              (96 images)
    DAVIS/img/*.jpg                   DAVIS/gt/*.png                    (345 images)
    SBD/dataset/img/*.jpg  SBD/dataset/inst/*.mat  SBD/dataset/val.txt  (every instance a sample)

Images and masks pair by file stem; files are sorted by name.

Masks: GrabCut and Berkeley use 255 = object, 128 = uncertain band, 0 = background; the object
is ``mask > 128`` and the band (``mask == 128``) is returned as ``Sample.ignore`` (excluded from
IoU and never clicked). DAVIS: any value > 0 in any colour channel is object, no ignore.
SBD: ``GTinst.Segmentation`` of each ``inst/<stem>.mat`` holds instance ids; instance ``k``
(``k`` not 0 or 255) is the sample ``mask == k``.

These sets have no referring expressions; the text is always ``"the main object"``
(:data:`CLASSIC_TEXT`). The split argument is ignored (every set is a test set) except for SBD,
where ``"test"``/``"val"`` read ``val.txt`` and ``"train"`` reads ``train.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import numpy.typing as npt

from .base import DatasetNotFoundError, Sample, mask_box, register_dataset, require_paths
from .base import data_root as resolve_root
from .hres import PairedFolderDataset, check_index, pair_folder
from .image_io import display_path, read_gray, read_rgb, read_unchanged

CLASSIC_TEXT = "the main object"

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv monitor",
)  # fmt: skip


def decode_band_mask(path: Path) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """GrabCut/Berkeley: object = value > 128, ignore = value == 128."""
    gray = read_gray(path)
    return gray > 128, gray == 128


def decode_any_positive(path: Path) -> tuple[npt.NDArray[np.bool_], None]:
    """DAVIS: object = any channel > 0 (as RITM: max over colour channels), no ignore."""
    img = read_unchanged(path, "mask")
    if img.ndim == 3:
        img = img[..., :3].max(axis=2)
    return img > 0, None


def _text(_stem: str) -> str:
    return CLASSIC_TEXT


class GrabCut(PairedFolderDataset):
    """GrabCut (50 images): ``GrabCut/data_GT`` images, ``GrabCut/boundary_GT`` masks."""

    LAYOUT = "<root>/GrabCut/\n  data_GT/*.{jpg,bmp,png}\n  boundary_GT/*.{bmp,png}  (255 object, 128 ignored band)"

    def __init__(self, split: str = "test", data_root: Optional[str | Path] = None) -> None:
        root = resolve_root(data_root)
        base = root / "GrabCut"
        pairs, skipped = pair_folder(
            "grabcut", root, base / "data_GT", base / "boundary_GT", self.LAYOUT,
            image_exts=(".jpg", ".jpeg", ".bmp", ".png"), mask_exts=(".bmp", ".png"),
        )  # fmt: skip
        super().__init__("grabcut", "test", pairs, decode_band_mask, _text, skipped)


class Berkeley(PairedFolderDataset):
    """Berkeley (96 images): ``Berkeley/images`` + ``Berkeley/masks``."""

    LAYOUT = "<root>/Berkeley/\n  images/*.jpg\n  masks/*.png  (255 object, 128 ignored band)"

    def __init__(self, split: str = "test", data_root: Optional[str | Path] = None) -> None:
        root = resolve_root(data_root)
        base = root / "Berkeley"
        pairs, skipped = pair_folder("berkeley", root, base / "images", base / "masks", self.LAYOUT)
        super().__init__("berkeley", "test", pairs, decode_band_mask, _text, skipped)


class DAVIS(PairedFolderDataset):
    """DAVIS as used for interactive segmentation (345 frames): ``DAVIS/img`` + ``DAVIS/gt``."""

    LAYOUT = "<root>/DAVIS/\n  img/*.jpg\n  gt/*.png  (any value > 0 = object)"

    def __init__(self, split: str = "test", data_root: Optional[str | Path] = None) -> None:
        root = resolve_root(data_root)
        base = root / "DAVIS"
        pairs, skipped = pair_folder("davis", root, base / "img", base / "gt", self.LAYOUT)
        super().__init__("davis", "test", pairs, decode_any_positive, _text, skipped)


class SBD:
    """SBD instances: every instance of every image listed in ``val.txt`` (or ``train.txt``).

    The instance index is built at construction (each ``.mat`` is read once); images are read
    lazily. Sample ids are ``"sbd/<split>/<stem>/<instance id>"``. Needs scipy.
    """

    LAYOUT = (
        "<root>/SBD/dataset/\n  img/*.jpg\n  inst/*.mat  (GTinst.Segmentation: instance ids)\n  val.txt, train.txt"
    )

    def __init__(self, split: str = "val", data_root: Optional[str | Path] = None) -> None:
        key = str(split).lower()
        if key not in ("val", "test", "train"):
            raise ValueError(f"sbd: unknown split {split!r}; use 'val' (alias 'test') or 'train'")
        self.name = "sbd"
        self.split = "train" if key == "train" else "val"
        root = resolve_root(data_root)
        base = root / "SBD" / "dataset"
        self.image_dir, self.inst_dir = base / "img", base / "inst"
        list_file = base / f"{self.split}.txt"
        paths = {"images": self.image_dir, "instances": self.inst_dir, "list": list_file}
        require_paths("sbd", root, paths, self.LAYOUT)
        try:
            lines = list_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            shown = display_path(list_file)
            raise ValueError(f"sbd: {shown} is not UTF-8 text ({e}); it should list image names, one a line") from e
        stems = sorted({line.strip() for line in lines if line.strip()})
        missing = [s for s in stems if not (self.inst_dir / f"{s}.mat").exists()]
        if missing:
            raise DatasetNotFoundError(
                f"sbd: {len(missing)} name(s) in {list_file} have no {self.inst_dir}/<name>.mat: "
                + ", ".join(missing[:5]) + f"\nExpected layout:\n{self.LAYOUT}"
            )  # fmt: skip
        self._items: list[tuple[str, int]] = []
        for stem in stems:
            seg, _ = self._load_inst(stem)
            ids = np.unique(seg)
            self._items += [(stem, int(k)) for k in ids if k != 0 and k != 255]

    def _load_inst(self, stem: str) -> tuple[npt.NDArray, npt.NDArray]:
        """``(Segmentation, Categories)`` of ``inst/<stem>.mat``."""
        from scipy.io import loadmat

        path = self.inst_dir / f"{stem}.mat"
        try:
            gt = loadmat(str(path))["GTinst"][0, 0]
            seg = np.asarray(gt["Segmentation"])
            cats = np.asarray(gt["Categories"]).ravel() if "Categories" in gt.dtype.names else np.zeros(0)
        except Exception as e:  # corrupt or unexpected .mat
            raise ValueError(f"cannot read SBD instance file {path}: {e}") from e
        if seg.ndim != 2:
            raise ValueError(f"SBD instance file {path}: Segmentation has shape {seg.shape}, expected HxW")
        return seg, cats

    def __len__(self) -> int:
        return len(self._items)

    @property
    def sample_ids(self) -> list[str]:
        return [f"sbd/{self.split}/{stem}/{k}" for stem, k in self._items]

    def __getitem__(self, index: int) -> Sample:
        stem, k = self._items[check_index(index, len(self))]
        image_path = self.image_dir / f"{stem}.jpg"
        image = read_rgb(image_path)
        seg, cats = self._load_inst(stem)
        if seg.shape != image.shape[:2]:
            raise ValueError(
                f"sbd: {self.inst_dir / (stem + '.mat')} has shape {seg.shape}, image {image_path} has {image.shape[:2]}"
            )
        mask = seg == k
        meta: dict = {"image_path": str(image_path), "instance_id": k}
        if 0 < k <= len(cats) and 0 <= int(cats[k - 1]) < len(VOC_CLASSES):
            meta["category"] = VOC_CLASSES[int(cats[k - 1])]
        return Sample(
            id=f"sbd/{self.split}/{stem}/{k}", image=image, mask=mask, text=CLASSIC_TEXT, box=mask_box(mask), meta=meta
        )

    def __repr__(self) -> str:
        return f"SBD(split={self.split!r}, len={len(self)})"


@register_dataset("grabcut")
def make_grabcut(split: str = "test", data_root: Optional[str | Path] = None, **_) -> GrabCut:
    return GrabCut(split=split, data_root=data_root)


@register_dataset("berkeley")
def make_berkeley(split: str = "test", data_root: Optional[str | Path] = None, **_) -> Berkeley:
    return Berkeley(split=split, data_root=data_root)


@register_dataset("davis")
def make_davis(split: str = "test", data_root: Optional[str | Path] = None, **_) -> DAVIS:
    return DAVIS(split=split, data_root=data_root)


@register_dataset("sbd")
def make_sbd(split: str = "test", data_root: Optional[str | Path] = None, **_) -> SBD:
    return SBD(split=split, data_root=data_root)
