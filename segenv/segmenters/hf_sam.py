"""transformers' SAM family (``hf:``): local folders, the model_type table, and what all HF adapters share.

``make_segmenter("hf:/models/FOLDER")`` (or ``HFSamSegmenter(checkpoint=FOLDER)`` /
``HFSamSegmenter(model=...)``) returns the adapter of the model's family, chosen through
:data:`HF_FAMILIES` (no if-chain): ``config.json``'s ``model_type`` for a folder, the model's
class for an instance. Each row names the transformers class and the adapter that drives it:

* ``"sam"`` -> ``SamModel`` -> :class:`~.hf_sam1.HFSam1Segmenter`;
* ``"sam_hq"`` -> ``SamHQModel`` -> :class:`~.hf_sam1.HFSamHQSegmenter`;
* ``"sam2"``, ``"sam2_video"`` (how the hub's facebook/sam2.1-* folders are saved) -> ``Sam2Model``
  -> :class:`~.hf_sam2.HFSam2Segmenter` (it takes the image-predictor subset of those weights);
* ``"sam3_tracker"`` -> ``Sam3TrackerModel`` -> :class:`~.hf_sam3.HFSam3TrackerSegmenter` (SAM 3's
  point / box / mask prompts; SAM 3's text model ``"sam3"`` is not a click segmenter).

A new family (e.g. SAM 3's tracker) is one more small adapter module subclassing
:class:`HFSamSegmenter` plus one row in :data:`HF_FAMILIES`.

Shared by every HF adapter (the SAM protocol itself is :mod:`.sam_common`'s): loading only local
folders written by ``save_pretrained`` (``config.json`` + weights; a hub id, a ``.pth`` or an
unknown model_type is a clear error), the device and dtype (bfloat16 on CUDA, float32 on CPU with
``dtype="auto"``; a model passed as ``model=`` is moved and cast in place), the pixel
normalisation (``x / 255``, then ImageNet mean/std or the folder's ``preprocessor_config.json``;
our own, since ``Sam2ImageProcessor`` needs torchvision), padding the resized image bottom-right
to ``img_size`` x ``img_size``, and the decoder call ``model(image_embeddings=..., input_points=
[B, 1, N, 2], input_labels=[B, 1, N], input_boxes=[B, 1, 4], input_masks=[B, 1, 256, 256],
multimask_output=...)`` with the cached embedding expanded along the image-batch axis so that
each prompt set of a batch keeps its own ``input_masks``.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

from ..device import resolve_device, resolve_dtype
from .sam_common import PreparedPrompt, SamFamilyBase

ENV_CHECKPOINT = "SEGAGENT_HF_SAM_CHECKPOINT"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class HFFamily:
    """One transformers SAM family: its name, transformers class, adapter and config model_types."""

    family: str
    model_class: str  # the transformers class (``getattr(transformers, model_class)``)
    adapter: str  # "module:Class" of its segmenter adapter, imported on first use
    model_types: tuple[str, ...]  # config.json ``model_type`` values loaded by this family


HF_FAMILIES: dict[str, HFFamily] = {
    f.family: f
    for f in (
        HFFamily("sam", "SamModel", "segenv.segmenters.hf_sam1:HFSam1Segmenter", ("sam",)),
        HFFamily("sam_hq", "SamHQModel", "segenv.segmenters.hf_sam1:HFSamHQSegmenter", ("sam_hq",)),
        HFFamily("sam2", "Sam2Model", "segenv.segmenters.hf_sam2:HFSam2Segmenter", ("sam2", "sam2_video")),
        HFFamily("sam3_tracker", "Sam3TrackerModel", "segenv.segmenters.hf_sam3:HFSam3TrackerSegmenter", ("sam3_tracker",)),
    )
}
# config.json model_type -> (family, transformers class name)
SUPPORTED_MODEL_TYPES = {t: (f.family, f.model_class) for f in HF_FAMILIES.values() for t in f.model_types}


def _how_to_set() -> str:
    return (
        f"pass checkpoint=FOLDER, set the environment variable {ENV_CHECKPOINT}=FOLDER, "
        "or use --segmenter hf:/path/to/sam-vit-base (a local folder written by save_pretrained)"
    )


def family_of_model(model: Any) -> str:
    """'sam' / 'sam_hq' / 'sam2' for an already built transformers model instance."""
    by_class = {f.model_class: f.family for f in HF_FAMILIES.values()}
    for cls in type(model).__mro__:  # the most derived known class wins
        if cls.__name__ in by_class:
            return by_class[cls.__name__]
    classes = [f.model_class for f in HF_FAMILIES.values()]
    raise TypeError(
        f"hf: model must be a transformers {', '.join(classes[:-1])} or {classes[-1]}, got {type(model).__name__}"
    )


def read_local_config(path: str, prefix: str, how_to_set: str, expected: str) -> dict:
    """``config.json`` of the local transformers folder ``path``, or a clear error: a hub id (no
    downloads here), a missing path, a single ``.pth`` file or a folder without ``config.json``.
    ``prefix`` names the spec in messages (``"hf"``), ``how_to_set`` says how to give a folder and
    ``expected`` what the folder should hold."""
    path = os.path.expanduser(str(path))
    if not os.path.exists(path):
        looks_like_hub_id = not os.path.isabs(path) and path.count("/") == 1 and not path.startswith(".")
        what = "looks like a Hugging Face hub id" if looks_like_hub_id else "does not exist"
        raise FileNotFoundError(
            f"{prefix}: {path!r} {what}. segagent loads only local folders (no downloads): download the model "
            f"elsewhere (e.g. `huggingface-cli download {path if looks_like_hub_id else 'facebook/sam-vit-base'} "
            f"--local-dir /models/NAME`), copy it here and pass the folder: {how_to_set}"
        )
    if os.path.isfile(path):
        if path.endswith((".pth", ".pt")):
            raise ValueError(
                f"{prefix}: {path} is a single .pth file, not a transformers folder; segment-anything checkpoints "
                f"load with the 'sam' backend: --segmenter sam:{path}"
            )
        raise ValueError(f"{prefix}: expected a transformers model folder (config.json + weights), got the file {path}")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        files = sorted(os.listdir(path))
        pths = [f for f in files if f.endswith((".pth", ".pt"))]
        hint = f"; for a segment-anything checkpoint use --segmenter sam:{os.path.join(path, pths[0])}" if pths else ""
        raise ValueError(
            f"{prefix}: no config.json in {path} (found {files[:8]}{'...' if len(files) > 8 else ''}); expected a folder "
            f"written by save_pretrained with {expected}{hint}"
        )
    with open(cfg_path) as f:
        return json.load(f)


def read_hf_folder(path: str) -> tuple[str, dict]:
    """Check that ``path`` is a local transformers SAM-family folder; return (family, config dict)."""
    cfg = read_local_config(path, "hf", _how_to_set(), f"model_type in {sorted(SUPPORTED_MODEL_TYPES)}")
    model_type = cfg.get("model_type")
    if model_type in ("sam3", "sam3_video"):
        raise ValueError(
            f"hf: {path} is a SAM 3 text-prompted model (model_type={model_type!r}, Sam3Model): it segments the "
            "instances of a phrase and takes no clicks. The click segmenter is SAM 3's tracker: pass a folder of "
            "model_type 'sam3_tracker' (Sam3TrackerModel)"
            + (f"; this folder is a text segmenter: --text-segmenter sam3:{path}" if model_type == "sam3" else "")
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"hf: {path} holds a model of model_type={model_type!r}; this backend supports "
            f"{sorted(SUPPORTED_MODEL_TYPES)} (transformers SamModel / SamHQModel / Sam2Model / Sam3TrackerModel)"
        )
    return SUPPORTED_MODEL_TYPES[model_type][0], cfg


def _read_norm(path: Optional[str], default: tuple[tuple, tuple] = (IMAGENET_MEAN, IMAGENET_STD)) -> tuple[tuple, tuple]:
    if path:
        pp = os.path.join(path, "preprocessor_config.json")
        if os.path.isfile(pp):
            with open(pp) as f:
                d = json.load(f)
            mean, std = d.get("image_mean"), d.get("image_std")
            if mean and std and len(mean) == 3 and len(std) == 3:
                return tuple(mean), tuple(std)
    return default


def _checkpoint_or_env(checkpoint: Optional[str]) -> str:
    checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT) or None
    if not checkpoint:
        raise FileNotFoundError(f"hf: no model folder given; {_how_to_set()}")
    return checkpoint


def adapter_class(family: str) -> type:
    """The segmenter adapter class of a family (imported from its module on first use)."""
    module, _, cls = HF_FAMILIES[family].adapter.partition(":")
    return getattr(importlib.import_module(module), cls)


class HFSamSegmenter(SamFamilyBase):
    """transformers SAM / SAM-HQ / SAM 2 behind the segmenter protocol.

    Calling ``HFSamSegmenter(...)`` returns an instance of the family's adapter (a subclass, as
    ``pathlib.Path(...)`` returns a ``PosixPath``); an adapter class may also be called directly.

    Args:
        checkpoint: local folder written by ``save_pretrained`` (default: env
            ``SEGAGENT_HF_SAM_CHECKPOINT``); not needed when ``model`` is given.
        device: ``"auto"`` (cuda if available, else cpu) or a torch device string.
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), ``"float32"``, ``"bfloat16"``, ``"float16"``
            (:func:`segenv.device.resolve_dtype`).
        model: an already built ``SamModel`` / ``SamHQModel`` / ``Sam2Model`` (tests, benchmarks).
        multimask: ``"always"`` (default), ``"first"`` or ``"never"``: see ``SamSegmenter``.
        hq_token_only: SAM-HQ only: use the HQ mask alone instead of SAM mask + HQ mask (the
            HQ-SAM default is False).
        batch_many: ``"auto"`` (batched on CUDA, looped on CPU), True or False.
    """

    name = "hf"
    family: str = ""  # set by each adapter: a key of HF_FAMILIES
    default_norm: tuple[tuple, tuple] = (IMAGENET_MEAN, IMAGENET_STD)  # without a preprocessor_config.json

    def __new__(cls, checkpoint: Optional[str] = None, device: str = "auto", dtype: str = "auto", model: Any = None,
                *args, **kwargs):
        if cls is HFSamSegmenter:  # the generic entry point: pick the family's adapter
            if model is not None:
                family = family_of_model(model)
            else:
                family, _ = read_hf_folder(_checkpoint_or_env(checkpoint))
            cls = adapter_class(family)
        return super().__new__(cls)

    def __init__(
        self,
        checkpoint: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        model: Any = None,
        multimask: str = "always",
        hq_token_only: bool = False,
        batch_many: Any = "auto",
    ) -> None:
        import torch

        self._init_common(multimask, batch_many)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        folder = None
        if model is None:
            checkpoint = _checkpoint_or_env(checkpoint)
            family, _ = read_hf_folder(checkpoint)
            self._check_family(family, checkpoint)
            folder = os.path.expanduser(str(checkpoint))
            import transformers

            cls = getattr(transformers, HF_FAMILIES[family].model_class)
            model = cls.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        self._check_family(family_of_model(model), type(model).__name__)
        self.checkpoint = checkpoint
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.hq_token_only = bool(hq_token_only)
        mean, std = _read_norm(folder, self.default_norm)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.img_size, self.lowres_size = self._sizes()

    def _check_family(self, family: str, what: str) -> None:
        if family != self.family:
            raise ValueError(
                f"hf: {what} is a {family!r} model but {type(self).__name__} drives {self.family!r} models; "
                f"use HFSamSegmenter(...) or make_segmenter('hf:FOLDER'), which pick the adapter"
            )

    # ---------------------------------------------------------------- hooks of each HF family
    def _sizes(self) -> tuple[int, tuple[int, int]]:  # pragma: no cover
        """(input frame side, low-res logits (h, w)) from ``self.model.config``."""
        raise NotImplementedError

    def _embed(self, x):  # pragma: no cover
        """Image embeddings of ``x`` [1, 3, S, S] (model dtype) as this family caches them."""
        raise NotImplementedError

    def _expanded_features(self, b: int) -> dict:  # pragma: no cover
        """The cached embeddings as decoder keyword arguments, expanded to batch ``b``."""
        raise NotImplementedError

    def _decoder_options(self) -> dict:
        """Extra keyword arguments of this family's decoder call."""
        return {}

    # ---------------------------------------------------------------- shared steps
    def _encode(self, resized: npt.NDArray[np.uint8]):
        import torch
        import torch.nn.functional as F

        nh, nw = resized.shape[:2]
        s = self.img_size
        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).float()[None]
        x = (x / 255.0 - self._mean) / self._std
        if (nh, nw) != (s, s):
            x = F.pad(x, (0, s - nw, 0, s - nh))
        return self._embed(x.to(self.dtype))

    def _run_decoder(self, group: Sequence[PreparedPrompt], multimask: bool):
        import torch

        b = len(group)
        n = group[0].key[0]
        kwargs = self._expanded_features(b)
        kwargs["multimask_output"] = multimask
        kwargs.update(self._decoder_options())
        if n > 0:
            kwargs["input_points"] = torch.stack([p.coords for p in group])[:, None]  # [B, 1, N, 2]
            kwargs["input_labels"] = torch.stack([p.labels for p in group])[:, None]  # [B, 1, N]
        if group[0].box is not None:
            kwargs["input_boxes"] = torch.stack([p.box for p in group])[:, None]  # [B, 1, 4]
        if group[0].mask is not None:
            kwargs["input_masks"] = torch.stack([p.mask for p in group])  # [B, 1, 256, 256]
        out = self.model(**kwargs)
        return out.pred_masks[:, 0], out.iou_scores[:, 0]  # [B, C, h, w], [B, C]
