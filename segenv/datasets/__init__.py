"""Datasets: the procedural default (no download) and loaders for the real layouts."""

from .base import (
    DATA_ENV_VAR,
    Dataset,
    DatasetNotFoundError,
    Sample,
    data_root,
    dataset_names,
    make_dataset,
    mask_box,
    register_dataset,
)
from . import shapes  # noqa: F401  (registers "shapes", "thin_shapes")
from . import refcoco, hres, classic  # noqa: F401  (register the real layouts)

__all__ = [
    "DATA_ENV_VAR",
    "Dataset",
    "DatasetNotFoundError",
    "Sample",
    "data_root",
    "dataset_names",
    "make_dataset",
    "mask_box",
    "register_dataset",
]
