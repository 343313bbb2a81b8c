"""Map a segment-anything SAM state dict onto transformers' ``SamModel`` names.

Written from comparing ``Sam().state_dict()`` and ``SamModel(SamConfig(...)).state_dict()`` key by
key (names and shapes); every tensor is copied unchanged (no reshapes or transposes needed):

=================================================  ==================================================
segment-anything                                   transformers ``SamModel``
=================================================  ==================================================
``image_encoder.pos_embed``                        ``vision_encoder.pos_embed``
``image_encoder.patch_embed.proj.*``               ``vision_encoder.patch_embed.projection.*``
``image_encoder.blocks.{i}.norm{1,2}.*``           ``vision_encoder.layers.{i}.layer_norm{1,2}.*``
``image_encoder.blocks.{i}.{attn,mlp}.*``          ``vision_encoder.layers.{i}.{attn,mlp}.*``
``image_encoder.neck.{0,1,2,3}.*``                 ``vision_encoder.neck.{conv1,layer_norm1,conv2,layer_norm2}.*``
``prompt_encoder.pe_layer.positional_encoding_``   ``prompt_encoder.shared_embedding.positional_embedding``
``gaussian_matrix``                                and ``shared_image_embedding.positional_embedding`` (tied)
``prompt_encoder.point_embeddings.{k}.*``          ``prompt_encoder.point_embed.{k}.*``
``prompt_encoder.mask_downscaling.{0,1,3,4,6}.*``  ``prompt_encoder.mask_embed.{conv1,layer_norm1,conv2,layer_norm2,conv3}.*``
``prompt_encoder.{not_a_point,no_mask}_embed.*``   same
``mask_decoder.transformer.layers.{i}.norm{j}.*``  ``mask_decoder.transformer.layers.{i}.layer_norm{j}.*``
``mask_decoder.transformer.norm_final_attn.*``     ``mask_decoder.transformer.layer_norm_final_attn.*``
``mask_decoder.output_upscaling.{0,1,3}.*``        ``mask_decoder.{upscale_conv1,upscale_layer_norm,upscale_conv2}.*``
MLP ``...layers.{j}.*`` of ``n`` layers            ``proj_in`` (j = 0), ``layers.{j-1}`` (0 < j < n-1), ``proj_out`` (j = n-1)
(``output_hypernetworks_mlps.{k}``, ``iou_prediction_head``)
everything else (attention q/k/v/out projections,  same
``iou_token``, ``mask_tokens``, ``mlp.lin1/lin2``)
=================================================  ==================================================

The transformers side's LayerNorms in the two-way transformer use eps 1e-6 where
segment-anything uses torch's default 1e-5: outputs agree to ~1e-4, not bit for bit.
"""

from __future__ import annotations

import re
from typing import Any

_NECK = {"0": "conv1", "1": "layer_norm1", "2": "conv2", "3": "layer_norm2"}
_MASK_DOWN = {"0": "conv1", "1": "layer_norm1", "3": "conv2", "4": "layer_norm2", "6": "conv3"}
_UPSCALE = {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}
_MLP_RE = re.compile(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.(\d+)\.(.+)$")


def _mlp_depths(keys) -> dict[str, int]:
    depths: dict[str, int] = {}
    for k in keys:
        m = _MLP_RE.match(k)
        if m:
            depths[m.group(1)] = max(depths.get(m.group(1), 0), int(m.group(2)) + 1)
    return depths


def sam_key_to_hf(key: str, mlp_depths: dict[str, int]) -> list[str]:
    """The transformers name(s) of one segment-anything parameter (two for the tied PE matrix)."""
    if key == "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
        return ["prompt_encoder.shared_embedding.positional_embedding", "shared_image_embedding.positional_embedding"]
    m = _MLP_RE.match(key)
    if m:
        prefix, j, rest = m.group(1), int(m.group(2)), m.group(3)
        n = mlp_depths[prefix]
        part = "proj_in" if j == 0 else "proj_out" if j == n - 1 else f"layers.{j - 1}"
        return [f"{prefix}.{part}.{rest}"]
    k = key
    if k.startswith("image_encoder."):
        k = "vision_encoder." + k[len("image_encoder.") :]
        k = k.replace(".patch_embed.proj.", ".patch_embed.projection.")
        k = re.sub(r"\.blocks\.(\d+)\.norm(\d)\.", r".layers.\1.layer_norm\2.", k)
        k = re.sub(r"\.blocks\.(\d+)\.", r".layers.\1.", k)
        k = re.sub(r"\.neck\.(\d)\.", lambda mm: f".neck.{_NECK[mm.group(1)]}.", k)
    elif k.startswith("prompt_encoder."):
        k = re.sub(r"\.point_embeddings\.(\d+)\.", r".point_embed.\1.", k)
        k = re.sub(r"\.mask_downscaling\.(\d)\.", lambda mm: f".mask_embed.{_MASK_DOWN[mm.group(1)]}.", k)
    elif k.startswith("mask_decoder."):
        k = re.sub(r"\.transformer\.layers\.(\d+)\.norm(\d)\.", r".transformer.layers.\1.layer_norm\2.", k)
        k = k.replace(".transformer.norm_final_attn.", ".transformer.layer_norm_final_attn.")
        k = re.sub(r"\.output_upscaling\.(\d)\.", lambda mm: f".{_UPSCALE[mm.group(1)]}.", k)
    return [k]


def sam_state_dict_to_hf(sd: dict[str, Any]) -> dict[str, Any]:
    """segment-anything ``Sam.state_dict()`` -> a state dict for transformers' ``SamModel``.

    Load the result with ``SamModel(config).load_state_dict(out, strict=True)`` where ``config``
    matches the SAM's sizes (vision hidden size / depth / heads / global attention indexes /
    window size; prompt encoder and decoder at 256). Tensors are shared, not copied.
    """
    depths = _mlp_depths(sd)
    out: dict[str, Any] = {}
    for key, value in sd.items():
        for new in sam_key_to_hf(key, depths):
            out[new] = value
    return out
