"""Dataset records, protocol and registry.

A dataset is anything indexable with ``len()`` that yields :class:`Sample`. Register a factory
with :func:`register_dataset` and build it by name with :func:`make_dataset`; the env never
branches on dataset names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..registry import Registry

DATA_ENV_VAR = "SEGAGENT_DATA"


@dataclass
class Sample:
    """One referring-segmentation item.

    Attributes:
        id: stable identifier (e.g. ``"refcoco/val/1234/0"``).
        image: HxWx3 uint8 RGB.
        mask: HxW bool ground truth.
        text: the referring expression.
        box: ``(x0, y0, x1, y1)`` pixel box of the ground truth, x1/y1 exclusive.
        ignore: optional HxW bool of pixels excluded from IoU and never clicked (Berkeley's band).
        meta: free-form extras (category, file names, ...).
    """

    id: str
    image: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.bool_]
    text: str
    box: tuple[int, int, int, int]
    ignore: Optional[npt.NDArray[np.bool_]] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Sample {self.id}: image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}")
        if self.mask.shape != self.image.shape[:2]:
            raise ValueError(f"Sample {self.id}: mask {self.mask.shape} does not match image {self.image.shape[:2]}")
        self.mask = self.mask.astype(bool, copy=False)
        if self.ignore is not None:
            if self.ignore.shape != self.mask.shape:
                raise ValueError(f"Sample {self.id}: ignore {self.ignore.shape} does not match mask {self.mask.shape}")
            self.ignore = self.ignore.astype(bool, copy=False)


def mask_box(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """Tight ``(x0, y0, x1, y1)`` box of a mask (x1/y1 exclusive); the whole image if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@runtime_checkable
class Dataset(Protocol):
    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message says which files are expected where."""


def data_root(root: Optional[str | os.PathLike] = None) -> Path:
    """``root`` if given, else ``$SEGAGENT_DATA``, else ``./data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(DATA_ENV_VAR, "data"))


def require_paths(dataset: str, root: Path, paths: dict[str, Path], layout: str) -> None:
    """Raise :class:`DatasetNotFoundError` listing every missing path and the expected layout."""
    missing = [f"  {what}: {p}" for what, p in paths.items() if not p.exists()]
    if missing:
        raise DatasetNotFoundError(
            f"{dataset}: data not found under {root} (set {DATA_ENV_VAR} or pass data_root=...).\n"
            "Missing:\n" + "\n".join(missing) + f"\nExpected layout:\n{layout}"
        )


DatasetFactory = Callable[..., Dataset]
#: Every dataset by name (``segenv.registry.Registry``; a name cannot be taken twice).
DATASETS: Registry[Dataset] = Registry("dataset", replace=False)


def register_dataset(name: str) -> Callable[[DatasetFactory], DatasetFactory]:
    """Decorator: make ``factory(split=..., data_root=..., **kwargs)`` buildable by ``name``."""
    return DATASETS.register(name)


def make_dataset(name: str, **kwargs) -> Dataset:
    """Build a registered dataset: ``make_dataset("refcoco", split="val", data_root=...)``."""
    return DATASETS.build(name, **kwargs)


def dataset_names() -> list[str]:
    return DATASETS.names()
