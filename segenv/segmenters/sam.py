"""The segment-anything adapter (``sam:``): a ``.pth`` SAM behind the segmenter protocol.

The shared SAM flow (resize into the 1024 frame, coordinate scaling, multimask choice,
previous-logit feedback, looped / batched ``predict_many``) is :mod:`.sam_common`'s; reading the
``.pth`` and building the model is :mod:`.sam_checkpoint`'s. What is segment-anything's own here:

* encoder: ``sam.preprocess`` (normalise + pad bottom-right to 1024) on the resized image, then
  ``image_encoder`` once per :meth:`~SamSegmenter.set_image`;
* decoder: ``prompt_encoder(points=(coords [B, N, 2], labels [B, N]), boxes=[B, 4],
  masks=prev [B, 1, 256, 256])`` then ``mask_decoder`` on the cached embedding (kept at batch 1:
  the decoder repeats it) with the cached dense positional encoding;
* masks: ``sam.postprocess_masks(lowres, input_size, original_size) > sam.mask_threshold``.

Checkpoints: a segment-anything ``.pth`` state dict (``sam_vit_b_01ec64.pth`` etc.); the
architecture is read from the state dict, so tiny test models load the same way.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

from ..device import resolve_device
from .sam_checkpoint import (  # noqa: F401  (re-exported: the loading API lived here before)
    EMBED_DIM_TO_TYPE,
    ENV_CHECKPOINT,
    TYPE_TO_EMBED_DIM,
    build_sam_from_arch,
    checkpoint_hint,
    import_segment_anything,
    infer_sam_arch,
    load_sam_model,
    load_sam_state_dict,
)
from .sam_common import MULTIMASK_MODES, PreparedPrompt, SamFamilyBase  # noqa: F401


class SamSegmenter(SamFamilyBase):
    """segment-anything SAM behind the segmenter protocol.

    Args:
        checkpoint: path to a segment-anything ``.pth`` state dict (default: env
            ``SEGAGENT_SAM_CHECKPOINT``); not needed when ``model`` is given.
        model_type: ``"auto"`` (read the architecture from the state dict) or ``"vit_b"`` /
            ``"vit_l"`` / ``"vit_h"`` (checked against the state dict's embed dim).
        device: ``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        model: an already built ``segment_anything.modeling.Sam`` (tests, benchmarks).
        multimask: ``"always"`` (docs/conventions.md#segmenter-feedback: 3 masks every step, keep the best score),
            ``"first"`` (only for a lone first click without box / previous logits; single-mask
            output afterwards) or ``"never"``.
        batch_many: ``"auto"`` (batched ``predict_many`` on CUDA, looped on CPU), True, False.
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: Optional[str] = None,
        model_type: str = "auto",
        device: str = "auto",
        model: Any = None,
        multimask: str = "always",
        batch_many: Any = "auto",
    ) -> None:
        import torch

        self._init_common(multimask, batch_many)
        self.device = resolve_device(device)
        self.dtype = torch.float32
        if model is None:
            checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT) or None
            if not checkpoint:
                raise FileNotFoundError(f"sam: no checkpoint given; {checkpoint_hint()}")
            model = load_sam_model(checkpoint, model_type)
        self.checkpoint = checkpoint
        self.model = model.eval().to(self.device)
        self.img_size = int(self.model.image_encoder.img_size)
        self.lowres_size = tuple(int(s) for s in self.model.prompt_encoder.mask_input_size)
        self.mask_threshold = float(self.model.mask_threshold)
        with torch.inference_mode():
            self._dense_pe = self.model.prompt_encoder.get_dense_pe()

    def _encode(self, resized: npt.NDArray[np.uint8]):
        import torch

        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).contiguous().float()[None]
        return self.model.image_encoder(self.model.preprocess(x))

    def _run_decoder(self, group: Sequence[PreparedPrompt], multimask: bool):
        import torch

        n = group[0].key[0]
        points = (torch.stack([p.coords for p in group]), torch.stack([p.labels for p in group])) if n > 0 else None
        boxes = torch.stack([p.box for p in group]) if group[0].box is not None else None
        masks = torch.stack([p.mask for p in group]) if group[0].mask is not None else None
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.model.mask_decoder(
            image_embeddings=self._features,
            image_pe=self._dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    def _upscale(self, chosen):
        return self.model.postprocess_masks(chosen, self._input_size, self.image_shape)
