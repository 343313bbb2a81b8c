"""The transformers SAM 2 / 2.1 adapter (``hf:`` folders of model_type ``sam2`` or ``sam2_video``).

Everything else is shared (:mod:`.hf_sam`, :mod:`.sam_common`); what is SAM 2's own (the maths of
``Sam2Processor``, which itself needs torchvision):

* frame: the image resized to 1024x1024 (aspect not kept, ``square_input``), coordinates scaled
  per axis by ``1024 / W`` and ``1024 / H``;
* encoder: ``get_image_embeddings`` once per image, keeping its three feature levels;
* masks: low-res logits resized straight to (H, W); low-res size from the prompt encoder.
"""

from __future__ import annotations

from .hf_sam import HFSamSegmenter


class HFSam2Segmenter(HFSamSegmenter):
    """transformers ``Sam2Model`` (SAM 2 / 2.1 Hiera) behind the segmenter protocol (args: :class:`HFSamSegmenter`)."""

    family = "sam2"
    square_input = True

    def _sizes(self) -> tuple[int, tuple[int, int]]:
        size = int(self.model.config.prompt_encoder_config.image_size)
        return size, tuple(int(s) for s in self.model.prompt_encoder.mask_input_size)

    def _embed(self, x):
        return list(self.model.get_image_embeddings(x))  # its three feature levels

    def _expanded_features(self, b: int) -> dict:
        return dict(image_embeddings=[t.expand(b, *t.shape[1:]) for t in self._features])

    def _upscale(self, chosen):
        import torch.nn.functional as F

        return F.interpolate(chosen, self.image_shape, mode="bilinear", align_corners=False)
