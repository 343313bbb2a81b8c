"""transformers' SAM family (``SamModel``, ``SamHQModel``, ``Sam2Model``) as one interactive segmenter.

Same protocol and feedback loop as :mod:`segenv.segmenters.sam` (REFERENCE.md section 4): every
step sends all clicks so far, the box if any and the previous chosen low-res logits as
``input_masks``; ``multimask_output=True`` and the mask with the best ``iou_scores`` is kept;
mask = logits > 0. ``predict`` returns ``(mask HxW bool, logits)`` with ``logits`` a **numpy
float32 array of shape (1, 256, 256)** (the chosen low-res logits, 4x the embedding grid: 256 for
the real 1024-px models; feed them back as ``prev_logits``, torch tensors accepted too).
``last_scores`` holds the chosen masks' predicted IoU (one per prompt set of the latest call);
``encoder_calls`` / ``decoder_calls`` count model calls. A model passed as ``model=`` is moved
(and, on CUDA, cast to bfloat16) in place.

Loading: only local folders written by ``save_pretrained`` (``config.json`` + weights). The
class comes from ``config.json``'s ``model_type`` (transformers 5.24 strings):

* ``"sam"`` -> ``SamModel``; ``"sam_hq"`` -> ``SamHQModel``;
* ``"sam2"`` -> ``Sam2Model``; ``"sam2_video"`` (how the hub's facebook/sam2.1-* folders are
  saved) -> ``Sam2Model`` too: it takes the image-predictor subset of those weights.

Preprocessing is our own (``Sam2ImageProcessor`` needs torchvision; for SAM the same maths as
``SamImageProcessor``): RGB uint8 -> cv2 ``INTER_LINEAR`` resize -> ``x / 255`` -> ``(x - mean) /
std`` with ImageNet mean/std (or the folder's ``preprocessor_config.json`` values).

* SAM / SAM-HQ: longest side to 1024 (segment-anything rounding), pad bottom-right to 1024x1024;
  coordinates scaled per axis by new/old size (= ``1024 / max(H, W)`` up to rounding), as
  ``SamProcessor``; low-res logits upsampled to 1024, cropped to the resized size, resized to
  (H, W) (the maths of ``SamProcessor.post_process_masks``).
* SAM 2: resize to 1024x1024 (aspect not kept), coordinates scaled per axis by ``1024 / W`` and
  ``1024 / H``; low-res logits resized straight to (H, W) (as ``Sam2Processor``).

The encoder runs once per ``set_image`` (``get_image_embeddings``; SAM-HQ also keeps the
intermediate ViT embeddings its HQ decoder needs; SAM 2 keeps its three feature levels). On CUDA
the model runs in bfloat16 (``dtype="auto"``), on CPU in float32. ``predict_many`` loops on CPU and
batches on CUDA (prompt sets of the same structure share one decoder call, the embedding is
expanded along the image-batch axis so that each set keeps its own ``input_masks``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

from .sam import (
    _Prepared,
    _SamFamilyBase,
    as_prev_logits,
    longest_side_shape,
    resize_rgb,
    resolve_device,
    scale_xy,
)

ENV_CHECKPOINT = "SEGAGENT_HF_SAM_CHECKPOINT"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# config.json model_type -> (family, transformers class name)
SUPPORTED_MODEL_TYPES = {
    "sam": ("sam", "SamModel"),
    "sam_hq": ("sam_hq", "SamHQModel"),
    "sam2": ("sam2", "Sam2Model"),
    "sam2_video": ("sam2", "Sam2Model"),
}


def _how_to_set() -> str:
    return (
        f"pass checkpoint=FOLDER, set the environment variable {ENV_CHECKPOINT}=FOLDER, "
        "or use --segmenter hf:/path/to/sam-vit-base (a local folder written by save_pretrained)"
    )


def family_of_model(model: Any) -> str:
    """'sam' / 'sam_hq' / 'sam2' for an already built transformers model instance."""
    names = [c.__name__ for c in type(model).__mro__]
    if "Sam2Model" in names:
        return "sam2"
    if "SamHQModel" in names:
        return "sam_hq"
    if "SamModel" in names:
        return "sam"
    raise TypeError(f"hf: model must be a transformers SamModel, SamHQModel or Sam2Model, got {type(model).__name__}")


def read_hf_folder(path: str) -> tuple[str, dict]:
    """Check that ``path`` is a local transformers SAM-family folder; return (family, config dict)."""
    path = os.path.expanduser(str(path))
    if not os.path.exists(path):
        looks_like_hub_id = not os.path.isabs(path) and path.count("/") == 1 and not path.startswith(".")
        what = "looks like a Hugging Face hub id" if looks_like_hub_id else "does not exist"
        raise FileNotFoundError(
            f"hf: {path!r} {what}. segagent loads only local folders (no downloads): download the model "
            f"elsewhere (e.g. `huggingface-cli download {path if looks_like_hub_id else 'facebook/sam-vit-base'} "
            f"--local-dir /models/NAME`), copy it here and pass the folder: {_how_to_set()}"
        )
    if os.path.isfile(path):
        if path.endswith((".pth", ".pt")):
            raise ValueError(
                f"hf: {path} is a single .pth file, not a transformers folder; segment-anything checkpoints "
                f"load with the 'sam' backend: --segmenter sam:{path}"
            )
        raise ValueError(f"hf: expected a transformers model folder (config.json + weights), got the file {path}")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        files = sorted(os.listdir(path))
        pths = [f for f in files if f.endswith((".pth", ".pt"))]
        hint = f"; for a segment-anything checkpoint use --segmenter sam:{os.path.join(path, pths[0])}" if pths else ""
        raise ValueError(
            f"hf: no config.json in {path} (found {files[:8]}{'...' if len(files) > 8 else ''}); expected a folder "
            f"written by save_pretrained with model_type in {sorted(SUPPORTED_MODEL_TYPES)}{hint}"
        )
    with open(cfg_path) as f:
        cfg = json.load(f)
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"hf: {path} holds a model of model_type={model_type!r}; this backend supports "
            f"{sorted(SUPPORTED_MODEL_TYPES)} (transformers SamModel / SamHQModel / Sam2Model)"
        )
    return SUPPORTED_MODEL_TYPES[model_type][0], cfg


def _read_norm(path: Optional[str]) -> tuple[tuple, tuple]:
    if path:
        pp = os.path.join(path, "preprocessor_config.json")
        if os.path.isfile(pp):
            with open(pp) as f:
                d = json.load(f)
            mean, std = d.get("image_mean"), d.get("image_std")
            if mean and std and len(mean) == 3 and len(std) == 3:
                return tuple(mean), tuple(std)
    return IMAGENET_MEAN, IMAGENET_STD


class HFSamSegmenter(_SamFamilyBase):
    """transformers SAM / SAM-HQ / SAM 2 behind the segmenter protocol.

    Args:
        checkpoint: local folder written by ``save_pretrained`` (default: env
            ``SEGAGENT_HF_SAM_CHECKPOINT``); not needed when ``model`` is given.
        device: ``"auto"`` (cuda if available, else cpu) or a torch device string.
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        model: an already built ``SamModel`` / ``SamHQModel`` / ``Sam2Model`` (tests, benchmarks).
        multimask: ``"always"`` (default, REFERENCE.md), ``"first"`` or ``"never"`` (see ``SamSegmenter``).
        hq_token_only: SAM-HQ only: use the HQ mask alone instead of SAM mask + HQ mask (the
            HQ-SAM default is False).
        batch_many: ``"auto"`` (batched on CUDA, looped on CPU), True or False.
    """

    name = "hf"

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
        if dtype == "auto":
            self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            self.dtype = getattr(torch, str(dtype).replace("torch.", ""))
        folder = None
        if model is None:
            checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT) or None
            if not checkpoint:
                raise FileNotFoundError(f"hf: no model folder given; {_how_to_set()}")
            family, _ = read_hf_folder(checkpoint)
            folder = os.path.expanduser(str(checkpoint))
            import transformers

            cls = getattr(transformers, {"sam": "SamModel", "sam_hq": "SamHQModel", "sam2": "Sam2Model"}[family])
            model = cls.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        self.family = family_of_model(model)
        self.checkpoint = checkpoint
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.hq_token_only = bool(hq_token_only)
        mean, std = _read_norm(folder)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        cfg = self.model.config
        if self.family == "sam2":
            self.img_size = int(cfg.prompt_encoder_config.image_size)
            self.lowres_size = tuple(int(s) for s in self.model.prompt_encoder.mask_input_size)
        else:
            self.img_size = int(cfg.vision_config.image_size)
            emb = int(cfg.prompt_encoder_config.image_embedding_size)
            self.lowres_size = (4 * emb, 4 * emb)
        self._input_size: tuple[int, int] = (0, 0)
        self._scale = (1.0, 1.0)

    # ---------------------------------------------------------------- image
    def set_image(self, image: npt.NDArray[np.uint8]) -> None:
        import torch
        import torch.nn.functional as F

        self._check_image(image)
        h, w = image.shape[:2]
        s = self.img_size
        if self.family == "sam2":
            nh, nw = s, s
        else:
            nh, nw = longest_side_shape(h, w, s)
        x = torch.from_numpy(resize_rgb(image, nh, nw)).to(self.device).permute(2, 0, 1).float()[None]
        x = (x / 255.0 - self._mean) / self._std
        if (nh, nw) != (s, s):
            x = F.pad(x, (0, s - nw, 0, s - nh))
        x = x.to(self.dtype)
        with torch.inference_mode():
            if self.family == "sam_hq":
                emb, inter = self.model.get_image_embeddings(x)
                self._features = (emb, list(inter))
            elif self.family == "sam2":
                self._features = list(self.model.get_image_embeddings(x))
            else:
                self._features = self.model.get_image_embeddings(x)
        self.encoder_calls += 1
        self._input_size = (nh, nw)
        self._scale = (nw / w, nh / h)

    # ---------------------------------------------------------------- prompts
    def _prepare(self, points, labels, box, prev_logits) -> _Prepared:
        import torch

        sx, sy = self._scale
        coords = torch.from_numpy(scale_xy(points, sx, sy)).to(self.device)
        lab = torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
        bx = torch.from_numpy(scale_xy(box, sx, sy)).to(self.device) if box is not None else None
        mask = as_prev_logits(prev_logits, self.lowres_size, self.device, self.dtype)
        return _Prepared(coords, lab, bx, mask)

    def _expanded_features(self, b: int) -> dict:
        if self.family == "sam_hq":
            emb, inter = self._features
            return dict(
                image_embeddings=emb.expand(b, *emb.shape[1:]),
                intermediate_embeddings=[t.expand(b, *t.shape[1:]) for t in inter],
            )
        if self.family == "sam2":
            return dict(image_embeddings=[t.expand(b, *t.shape[1:]) for t in self._features])
        return dict(image_embeddings=self._features.expand(b, *self._features.shape[1:]))

    def _decode(self, group: Sequence[_Prepared]):
        import torch
        import torch.nn.functional as F

        b = len(group)
        n = group[0].key[0]
        kwargs = self._expanded_features(b)
        kwargs["multimask_output"] = self._use_multimask(group[0].key)
        if self.family == "sam_hq":
            kwargs["hq_token_only"] = self.hq_token_only
        if n > 0:
            kwargs["input_points"] = torch.stack([p.coords for p in group])[:, None]  # [B, 1, N, 2]
            kwargs["input_labels"] = torch.stack([p.labels for p in group])[:, None]  # [B, 1, N]
        if group[0].box is not None:
            kwargs["input_boxes"] = torch.stack([p.box for p in group])[:, None]  # [B, 1, 4]
        if group[0].mask is not None:
            kwargs["input_masks"] = torch.stack([p.mask for p in group])  # [B, 1, 256, 256]
        with torch.inference_mode():
            out = self.model(**kwargs)
            self.decoder_calls += 1
            low = out.pred_masks[:, 0].float()  # [B, C, h, w]
            iou = out.iou_scores[:, 0].float()  # [B, C]
            best = iou.argmax(dim=1)
            rows = torch.arange(b, device=low.device)
            chosen = low[rows, best]  # [B, h, w]
            scores = iou[rows, best]
            x = chosen[:, None]
            if self.family == "sam2":
                full = F.interpolate(x, self.image_shape, mode="bilinear", align_corners=False)
            else:
                s = self.img_size
                x = F.interpolate(x, (s, s), mode="bilinear", align_corners=False)
                x = x[..., : self._input_size[0], : self._input_size[1]]
                full = F.interpolate(x, self.image_shape, mode="bilinear", align_corners=False)
            full = (full[:, 0] > 0).cpu().numpy()
            chosen = chosen.cpu().numpy()
        return (
            [full[i] for i in range(b)],
            [chosen[i : i + 1].copy() for i in range(b)],
            [float(v) for v in scores.cpu()],
        )
