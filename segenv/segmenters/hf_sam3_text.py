"""SAM 3's text-prompted model (transformers ``Sam3Model``, ``model_type`` ``"sam3"``) as a text segmenter.

``Sam3Model`` finds every instance of a noun phrase: DETR-style queries, each with a class logit,
a box and a mask, plus one presence logit for the whole image. The adapter does what
``Sam3Processor`` + ``post_process_instance_segmentation`` do, by hand, because SAM 3's image
processor imports torchvision (absent here, ``TOOLCHAIN.md``):

* the image is resized (bilinear, no padding) to the vision backbone's square ``image_size``
  (1008 for the released model), scaled to [0, 1] and normalised with mean = std = 0.5 (or the
  folder's ``preprocessor_config.json``);
* the text is tokenised by the folder's tokenizer, padded to ``max_length`` 32 (the processor's);
* an instance's score is ``sigmoid(class logit) * sigmoid(presence logit)``; its mask is the
  sigmoid of its low-res mask logits, resized (bilinear) to the image and cut at ``mask_threshold``.

Then :func:`.text.pick_instance` chooses ONE instance: the highest score reaching ``threshold``
(0.5 by default; transformers' post-processing keeps instances from 0.3, but a referring
expression names one object and a weak best instance is better answered "nothing"); none: an
empty mask. The image and the text are encoded in one forward per call (one call per episode).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from ..device import resolve_device, resolve_dtype
from .hf_sam import _read_norm, read_local_config
from .hf_sam3 import SAM3_MEAN_STD
from .text import TextMask, pick_instance

ENV_CHECKPOINT = "SEGAGENT_SAM3_TEXT_CHECKPOINT"
MODEL_TYPES = ("sam3",)


def _how_to_set() -> str:
    return (f"pass checkpoint=FOLDER, set {ENV_CHECKPOINT}=FOLDER, or use --text-segmenter sam3:/path/to/sam3 "
            "(a local folder of SAM 3's text model, model_type 'sam3', written by save_pretrained)")


def read_sam3_text_folder(path: str) -> dict:
    """``config.json`` of a SAM 3 text-model folder, or an error naming the expected model_type."""
    cfg = read_local_config(path, "sam3", _how_to_set(), "model_type 'sam3' (Sam3Model)")
    model_type = cfg.get("model_type")
    if model_type == "sam3_tracker":
        raise ValueError(
            f"sam3: {path} is SAM 3's tracker (model_type 'sam3_tracker', Sam3TrackerModel): it takes clicks and "
            f"boxes, not text. Use it as the click segmenter (--segmenter hf:{path}); the text segmenter needs a "
            "folder of model_type 'sam3' (Sam3Model)"
        )
    if model_type not in MODEL_TYPES:
        raise ValueError(f"sam3: {path} holds model_type={model_type!r}; the text segmenter needs model_type 'sam3' "
                         "(transformers Sam3Model)")
    return cfg


TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def _load_tokenizer(folder: str) -> Any:
    """The folder's tokenizer. Checked by its files first: transformers 5 builds a CLIP tokenizer of
    2 tokens from a folder that has none, silently, and every word would become the same token."""
    from transformers import AutoTokenizer

    hint = ("the folder needs SAM 3's tokenizer files (tokenizer.json, or vocab.json + merges.txt) beside "
            "config.json: copy them from the downloaded model")
    if not any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        raise ValueError(f"sam3: no tokenizer in {folder} (none of {TOKENIZER_FILES}); {hint}")
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"sam3: the tokenizer in {folder} does not load ({exc}); {hint}") from exc


class HFSam3TextSegmenter:
    """transformers ``Sam3Model`` behind the text-segmenter protocol (module docstring).

    Args:
        checkpoint: local folder (config.json, weights and the tokenizer files); default: env
            ``SEGAGENT_SAM3_TEXT_CHECKPOINT``. Not needed when ``model`` and ``tokenizer`` are given.
        device, dtype: as the click backends (``"auto"``: cuda if available; bfloat16 on CUDA).
        model, tokenizer: an already built ``Sam3Model`` and its tokenizer (tests, benchmarks).
        threshold: the lowest instance score that counts as an answer (:func:`.text.pick_instance`).
        mask_threshold: the probability from which a pixel belongs to the chosen instance.
        max_text_length: tokens the text is padded / truncated to (SAM 3's processor: 32).
    """

    name = "sam3"

    def __init__(self, checkpoint: Optional[str] = None, device: str = "auto", dtype: str = "auto",
                 model: Any = None, tokenizer: Any = None, threshold: float = 0.5, mask_threshold: float = 0.5,
                 max_text_length: int = 32) -> None:
        import torch

        for label, value in (("threshold", threshold), ("mask_threshold", mask_threshold)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"sam3: {label} must be in [0, 1], got {value}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        folder = None
        if model is None or tokenizer is None:
            checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT) or None
            if not checkpoint:
                raise FileNotFoundError(f"sam3: no model folder given; {_how_to_set()}")
            read_sam3_text_folder(checkpoint)
            folder = os.path.expanduser(str(checkpoint))
        if model is None:
            from transformers import Sam3Model

            model = Sam3Model.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        if type(model).__name__ != "Sam3Model":
            raise TypeError(f"sam3: model must be a transformers Sam3Model, got {type(model).__name__}")
        if tokenizer is None:
            tokenizer = _load_tokenizer(folder)
        self.checkpoint = checkpoint
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.tokenizer = tokenizer
        self.threshold, self.mask_threshold = float(threshold), float(mask_threshold)
        self.max_text_length = int(max_text_length)
        self.side = int(model.config.vision_config.backbone_config.image_size)
        mean, std = _read_norm(folder, SAM3_MEAN_STD)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def inputs(self, image: npt.NDArray[np.uint8], text: str) -> dict:
        """The model's keyword inputs for ``image`` (HxWx3 uint8) and ``text`` (module docstring)."""
        import torch
        import torch.nn.functional as F

        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"sam3: segment needs an HxWx3 uint8 RGB image, got {getattr(image, 'shape', type(image))}")
        if not isinstance(text, str):
            raise TypeError(f"sam3: text must be a string, got {type(text).__name__}")
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).float()[None]
        x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        x = (x / 255.0 - self._mean) / self._std
        tokens = self.tokenizer([text], padding="max_length", max_length=self.max_text_length, truncation=True,
                                return_tensors="pt")
        return {"pixel_values": x.to(self.dtype), "input_ids": tokens["input_ids"].to(self.device),
                "attention_mask": tokens["attention_mask"].to(self.device)}

    def segment(self, image: npt.NDArray[np.uint8], text: str) -> TextMask:
        import torch
        import torch.nn.functional as F

        h, w = image.shape[:2] if isinstance(image, np.ndarray) and image.ndim == 3 else (0, 0)
        inputs = self.inputs(image, text)
        with torch.inference_mode():
            out = self.model(**inputs)
        scores = out.pred_logits[0].float().sigmoid()
        if out.presence_logits is not None:
            scores = scores * out.presence_logits[0].float().sigmoid()
        best, count = pick_instance(scores.cpu().numpy(), self.threshold)
        if best is None:
            top = float(scores.max()) if scores.numel() else 0.0
            return TextMask(np.zeros((h, w), bool), top, 0)
        logits = out.pred_masks[0, best].float()[None, None]
        prob = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).sigmoid()[0, 0]
        return TextMask((prob > self.mask_threshold).cpu().numpy(), float(scores[best]), count)


__all__ = ["HFSam3TextSegmenter", "read_sam3_text_folder"]
