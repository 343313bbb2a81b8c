"""Tiny SAM-family models with random (seeded) weights, for tests and benchmarks.

They keep the real pipeline's shapes (1024 px input, 64x64x256 embedding, 256x256 low-res
logits, the standard 256-wide prompt encoder and mask decoder) and shrink only the image
encoder, so every code path (padding, coordinate scaling, mask input) is exercised quickly:

* :func:`tiny_sam`: segment-anything ``Sam``, ViT embed dim 128, depth 2, 4 heads, global
  attention in block 1 (~4.9 M parameters, mostly the standard mask decoder).
* :func:`tiny_hf_sam`: transformers ``SamModel`` with the same sizes **and the same weights** as
  ``tiny_sam(seed)`` (mapped with :func:`segenv.segmenters.convert.sam_state_dict_to_hf`).
* :func:`tiny_hf_sam_hq`: transformers ``SamHQModel`` of the same sizes (own random weights).
* :func:`tiny_hf_sam2`: transformers ``Sam2Model`` with a 4-stage Hiera of widths 16-128.
  Config trap: a ``global_attention_blocks`` entry that is the first block of a stage raises
  ZeroDivisionError, so the global block here is block 3 (second block of stage 3).

Every builder takes ``image_size`` (default 1024, the real input size); tests use 256 px models
(16x16 embedding, 64x64 low-res logits) where only plumbing matters, 16x cheaper per call.

Random weights give arbitrary (but deterministic) masks: use them for plumbing, shapes, timing
and backend cross-checks, never for quality numbers.
"""

from __future__ import annotations

import os
from typing import Any

TINY_VIT = dict(embed_dim=128, depth=2, num_heads=4, global_attn_indexes=[1], window_size=14, img_size=1024, patch_size=16)
HF_KINDS = ("sam", "sam_hq", "sam2", "sam3_tracker")
# the tiny SAM 3 text model's word-level vocabulary: the procedural captions' words (ids 2..)
TINY_WORDS = ("the a an of object small large red green blue yellow orange purple white black circle square "
              "triangle star cross ring frame grid line zigzag left right top bottom").split()


def tiny_sam_arch(image_size: int = 1024) -> dict:
    return dict(
        embed_dim=TINY_VIT["embed_dim"],
        patch_size=16,
        img_size=image_size,
        depth=TINY_VIT["depth"],
        num_heads=TINY_VIT["num_heads"],
        mlp_ratio=4.0,
        use_rel_pos=True,
        window_size=TINY_VIT["window_size"],
        global_attn_indexes=list(TINY_VIT["global_attn_indexes"]),
        out_chans=256,
        decoder_depth=2,
        decoder_mlp_dim=2048,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )


def tiny_sam(seed: int = 0, image_size: int = 1024):
    """segment-anything ``Sam`` with a tiny ViT image encoder and random weights (eval mode)."""
    import torch

    from .sam_checkpoint import build_sam_from_arch

    torch.manual_seed(seed)
    return build_sam_from_arch(tiny_sam_arch(image_size)).eval()


def _tiny_vision_kwargs(image_size: int) -> dict:
    return dict(
        hidden_size=TINY_VIT["embed_dim"],
        num_hidden_layers=TINY_VIT["depth"],
        num_attention_heads=TINY_VIT["num_heads"],
        global_attn_indexes=list(TINY_VIT["global_attn_indexes"]),
        window_size=TINY_VIT["window_size"],
        image_size=image_size,
        patch_size=16,
        output_channels=256,
        mlp_dim=4 * TINY_VIT["embed_dim"],
    )


def tiny_hf_sam_config(image_size: int = 1024):
    from transformers import SamConfig

    return SamConfig(
        vision_config=_tiny_vision_kwargs(image_size),
        prompt_encoder_config=dict(image_size=image_size, patch_size=16),
    )


def tiny_hf_sam(seed: int = 0, image_size: int = 1024):
    """transformers ``SamModel`` equal to ``tiny_sam(seed)`` (its weights mapped across)."""
    from transformers import SamModel

    from .convert import sam_state_dict_to_hf

    model = SamModel(tiny_hf_sam_config(image_size))
    model.load_state_dict(sam_state_dict_to_hf(tiny_sam(seed, image_size).state_dict()), strict=True)
    return model.eval()


def tiny_hf_sam_hq(seed: int = 0, image_size: int = 1024):
    """transformers ``SamHQModel`` with a tiny ViT (random seeded weights)."""
    import torch
    from transformers import SamHQConfig, SamHQModel

    torch.manual_seed(seed)
    cfg = SamHQConfig(
        vision_config=_tiny_vision_kwargs(image_size),
        prompt_encoder_config=dict(image_size=image_size, patch_size=16),
        mask_decoder_config=dict(vit_dim=TINY_VIT["embed_dim"]),
    )
    return SamHQModel(cfg).eval()


def tiny_hf_sam2_config(image_size: int = 1024):
    from transformers import Sam2Config

    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=16,
        num_attention_heads=1,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[3],  # must not be the first block of a stage (ZeroDivisionError)
        image_size=[image_size, image_size],
    )
    g = image_size // 4  # patch-embed stride 4, then /2 per stage
    vision = dict(
        model_type="sam2_vision_model",
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[g, g], [g // 2, g // 2], [g // 4, g // 4]],
    )
    return Sam2Config(vision_config=vision, prompt_encoder_config=dict(image_size=image_size, patch_size=16))


def tiny_hf_sam2(seed: int = 0, image_size: int = 1024):
    """transformers ``Sam2Model`` with a tiny Hiera backbone (random seeded weights, ~4.6 M params)."""
    import torch
    from transformers import Sam2Model

    torch.manual_seed(seed)
    return Sam2Model(tiny_hf_sam2_config(image_size)).eval()


def tiny_hf_sam3_tracker(seed: int = 0, image_size: int = 224):
    """transformers ``Sam3TrackerModel`` with a 2-layer, 32-wide ViT (patch 14; random seeded weights).

    ``image_size`` must be a multiple of 14 (the released model: 1008); other sizes are rounded
    down to one.
    """
    import torch
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    side = max(28, image_size // 14 * 14)
    g = side // 14  # the ViT's token grid; SAM 3's neck makes 4x, 2x and 1x levels of it
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=side, patch_size=14, window_size=min(8, g), pretrain_image_size=side)
    vision = dict(model_type="sam3_vision_model", backbone_config=vit, fpn_hidden_size=32,
                  backbone_feature_sizes=[[4 * g, 4 * g], [2 * g, 2 * g], [g, g]])
    config = Sam3TrackerConfig(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=32, image_size=side, patch_size=14),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2,
                                 iou_head_hidden_dim=32),
    )
    torch.manual_seed(seed)
    return Sam3TrackerModel(config).eval()


def tiny_hf_sam3_text(seed: int = 0, image_size: int = 224):
    """transformers ``Sam3Model`` (SAM 3's text-prompted model) with the tracker's tiny vision tower, a
    2-layer 32-wide CLIP text encoder (vocabulary 99) and 1-layer 32-wide DETR encoder / decoder with
    8 queries (random seeded weights; ~0.26 M parameters)."""
    import torch
    from transformers import Sam3Config, Sam3Model

    side = max(28, image_size // 14 * 14)
    g = side // 14
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=side, patch_size=14, window_size=min(8, g), pretrain_image_size=side)
    vision = dict(model_type="sam3_vision_model", backbone_config=vit, fpn_hidden_size=32,
                  backbone_feature_sizes=[[4 * g, 4 * g], [2 * g, 2 * g], [g, g]])
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    text = dict(model_type="clip_text_model", vocab_size=99, hidden_size=32, intermediate_size=64, projection_dim=32,
                num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32, pad_token_id=1,
                bos_token_id=97, eos_token_id=98)
    config = Sam3Config(vision_config=vision, text_config=text, geometry_encoder_config=dict(num_layers=1, **small),
                        detr_encoder_config=dict(num_layers=1, **small),
                        detr_decoder_config=dict(num_layers=1, num_queries=8, **small),
                        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2))
    torch.manual_seed(seed)
    return Sam3Model(config).eval()


def tiny_text_tokenizer():
    """A word-level fast tokenizer for :func:`tiny_hf_sam3_text` (the real SAM 3 folder ships CLIP's BPE):
    lower-cased words of :data:`TINY_WORDS`, ``<unk>`` 0, ``<pad>`` 1, ``<bos>`` 97, ``<eos>`` 98 around each text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, **{w: i + 2 for i, w in enumerate(TINY_WORDS)}, "<bos>": 97, "<eos>": 98}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 97), ("<eos>", 98)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>")


def save_tiny_sam3_text(folder: str, seed: int = 0, image_size: int = 224) -> str:
    """``save_pretrained`` :func:`tiny_hf_sam3_text` and :func:`tiny_text_tokenizer` into ``folder``
    (a SAM 3 text-model folder as the text segmenter loads it)."""
    os.makedirs(folder, exist_ok=True)
    tiny_hf_sam3_text(seed, image_size).save_pretrained(folder)
    tiny_text_tokenizer().save_pretrained(folder)
    return folder


def tiny_hf_model(kind: str, seed: int = 0, image_size: int = 1024) -> Any:
    if kind == "sam":
        return tiny_hf_sam(seed, image_size)
    if kind == "sam_hq":
        return tiny_hf_sam_hq(seed, image_size)
    if kind == "sam2":
        return tiny_hf_sam2(seed, image_size)
    if kind == "sam3_tracker":
        return tiny_hf_sam3_tracker(seed, image_size)
    raise ValueError(f"unknown tiny transformers model kind {kind!r}; expected one of {HF_KINDS}")


def save_tiny_hf(folder: str, kind: str = "sam", seed: int = 0, image_size: int = 1024) -> str:
    """``save_pretrained`` a tiny transformers model (``kind`` in :data:`HF_KINDS`) into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    tiny_hf_model(kind, seed, image_size).save_pretrained(folder)
    return folder


def save_tiny_sam_pth(path: str, seed: int = 0, image_size: int = 1024) -> str:
    """Save ``tiny_sam(seed)``'s state dict as a segment-anything style ``.pth`` file."""
    import torch

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(tiny_sam(seed, image_size).state_dict(), path)
    return path
