"""The transformers SAM and SAM-HQ adapters (``hf:`` folders of model_type ``sam`` / ``sam_hq``).

Everything else is shared (:mod:`.hf_sam`, :mod:`.sam_common`); what is SAM's own:

* frame: longest side to 1024 (segment-anything rounding), padded bottom-right to 1024x1024;
  coordinates scaled per axis by new/old size, as ``SamProcessor``;
* encoder: ``get_image_embeddings`` once per image (SAM-HQ also keeps the intermediate ViT
  embeddings its HQ decoder needs, and passes ``hq_token_only``);
* masks: low-res logits upsampled to 1024, cropped to the resized size, resized to (H, W) (the
  maths of ``SamProcessor.post_process_masks``); low-res size = 4 x the embedding grid (256).
"""

from __future__ import annotations

from .hf_sam import HFSamSegmenter


class HFSam1Segmenter(HFSamSegmenter):
    """transformers ``SamModel`` (SAM ViT-B/L/H) behind the segmenter protocol (args: :class:`HFSamSegmenter`)."""

    family = "sam"

    def _sizes(self) -> tuple[int, tuple[int, int]]:
        cfg = self.model.config
        emb = int(cfg.prompt_encoder_config.image_embedding_size)
        return int(cfg.vision_config.image_size), (4 * emb, 4 * emb)

    def _embed(self, x):
        return self.model.get_image_embeddings(x)  # [1, 256, 64, 64]

    def _expanded_features(self, b: int) -> dict:
        return dict(image_embeddings=self._features.expand(b, *self._features.shape[1:]))

    def _upscale(self, chosen):
        import torch.nn.functional as F

        s = self.img_size
        x = F.interpolate(chosen, (s, s), mode="bilinear", align_corners=False)
        x = x[..., : self._input_size[0], : self._input_size[1]]
        return F.interpolate(x, self.image_shape, mode="bilinear", align_corners=False)


class HFSamHQSegmenter(HFSam1Segmenter):
    """transformers ``SamHQModel`` (HQ-SAM) behind the segmenter protocol (args: :class:`HFSamSegmenter`)."""

    family = "sam_hq"

    def _embed(self, x):
        emb, inter = self.model.get_image_embeddings(x)
        return emb, list(inter)

    def _expanded_features(self, b: int) -> dict:
        emb, inter = self._features
        return dict(
            image_embeddings=emb.expand(b, *emb.shape[1:]),
            intermediate_embeddings=[t.expand(b, *t.shape[1:]) for t in inter],
        )

    def _decoder_options(self) -> dict:
        return {"hq_token_only": self.hq_token_only}
