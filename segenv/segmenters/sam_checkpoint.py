"""Reading segment-anything ``.pth`` checkpoints: the torchvision-free import, the state dict, the architecture.

* :func:`import_segment_anything`: ``segment_anything.modeling`` / ``build_sam`` without torchvision.
* :func:`load_sam_state_dict`: a ``.pth`` (or ``.safetensors``) state dict, with clear errors for the
  usual mix-ups (a transformers folder, SAM 2 or HQ-SAM weights, a folder instead of a file).
* :func:`infer_sam_arch` / :func:`build_sam_from_arch`: the architecture is read from the state dict
  (embed dim, depth, heads from the relative-position tables, global-attention blocks from their
  table size), so vit_b / vit_l / vit_h and tiny test models load the same way.
* :func:`load_sam_model`: all of the above, checking an optional ``model_type``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import types
from functools import partial

ENV_CHECKPOINT = "SEGAGENT_SAM_CHECKPOINT"
# embed dim of image_encoder.patch_embed.proj.weight -> segment-anything model type
EMBED_DIM_TO_TYPE = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
TYPE_TO_EMBED_DIM = {v: k for k, v in EMBED_DIM_TO_TYPE.items()}


# --------------------------------------------------------------------------------------------
# segment-anything import without torchvision
# --------------------------------------------------------------------------------------------
def import_segment_anything() -> tuple[types.ModuleType, types.ModuleType]:
    """Return ``(segment_anything.modeling, segment_anything.build_sam)``.

    Why this exists: ``segment_anything/__init__.py`` imports ``SamPredictor``, whose transforms
    import torchvision, which is not installed here (and must not be). The model code
    (``modeling``, ``build_sam``) does not need torchvision. So on a torchvision
    ``ModuleNotFoundError`` we drop the half-imported ``segment_anything*`` modules, register a
    bare package module whose ``__path__`` is the installed folder (so its ``__init__`` never
    runs), and import the two submodules through it.
    """
    try:
        import segment_anything  # noqa: F401  (works where torchvision is installed)
    except ModuleNotFoundError as exc:
        if exc.name == "segment_anything":
            raise ImportError(
                "the 'sam' segmenter needs the segment-anything package: pip install 'segagent[sam]' "
                "(or pip install segment-anything torch)"
            ) from exc
        if exc.name != "torchvision":
            raise
        for key in [k for k in sys.modules if k == "segment_anything" or k.startswith("segment_anything.")]:
            del sys.modules[key]
        spec = importlib.util.find_spec("segment_anything")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("segment_anything is not installed as a package folder") from exc
        pkg = types.ModuleType("segment_anything")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__package__ = "segment_anything"
        sys.modules["segment_anything"] = pkg
    modeling = importlib.import_module("segment_anything.modeling")
    build_sam = importlib.import_module("segment_anything.build_sam")
    return modeling, build_sam



# --------------------------------------------------------------------------------------------
# checkpoint reading and architecture inference
# --------------------------------------------------------------------------------------------
def checkpoint_hint() -> str:
    """How to point the "sam" backend at a checkpoint (for error messages)."""
    return (
        f"pass checkpoint=PATH, set the environment variable {ENV_CHECKPOINT}=PATH, "
        "or use --segmenter sam:/path/to/sam_vit_b_01ec64.pth"
    )


def load_sam_state_dict(path: str) -> dict:
    """Read a segment-anything state dict from ``path`` with clear errors for the usual mix-ups."""
    import torch

    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(
                f"sam: {path} is a transformers model folder (it has config.json); "
                f"load it with the transformers backend: --segmenter hf:{path} (or make_segmenter('hf:{path}'))"
            )
        pths = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pt")))
        hint = f"; it holds {pths}: pass one of them, e.g. sam:{os.path.join(path, pths[0])}" if pths else ""
        raise ValueError(f"sam: checkpoint must be a segment-anything .pth file, got the folder {path}{hint}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sam: checkpoint file not found: {path!r}. {checkpoint_hint()}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(path)
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure: say what was expected
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch bolds parts of its message
            first = text.splitlines()[0][:200] if text else ""
            raise ValueError(
                f"sam: could not read {path} as a segment-anything checkpoint: torch.load(weights_only=True) "
                f"failed ({type(exc).__name__}: {first}). Expected a state dict of tensors as Meta releases it "
                "(sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth). A file that needs full "
                "unpickling (a pickled module or object) is refused because loading it could run code: re-save "
                "its state_dict() with torch.save, or download the official checkpoint again if the file is damaged"
            ) from None
    if isinstance(sd, dict):
        for wrap in ("model", "state_dict"):
            inner = sd.get(wrap)
            if isinstance(inner, dict) and not any(k.startswith("image_encoder.") for k in sd):
                sd = inner
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"sam: {path} does not hold a state dict (got {type(sd).__name__})")
    keys = list(sd)
    if any(k.startswith("vision_encoder.") for k in keys):
        folder = os.path.dirname(path) or "."
        raise ValueError(f"sam: {path} holds transformers weights; load its folder with --segmenter hf:{folder}")
    if any(k.startswith("image_encoder.trunk.") for k in keys):
        raise ValueError(
            f"sam: {path} looks like a SAM 2 checkpoint (official sam2 format); segagent runs SAM 2 through "
            "transformers: pass a transformers SAM 2 folder (e.g. a download of facebook/sam2.1-hiera-large) as hf:PATH"
        )
    if any(k.startswith("mask_decoder.hf_") or "compress_vit_feat" in k for k in keys):
        raise ValueError(
            f"sam: {path} looks like an HQ-SAM checkpoint; load the transformers version "
            "(e.g. a download of syscv-community/sam-hq-vit-base) with hf:PATH"
        )
    if "image_encoder.patch_embed.proj.weight" not in sd:
        raise ValueError(
            f"sam: {path} is not a segment-anything state dict (no image_encoder.patch_embed.proj.weight; "
            f"first keys: {keys[:4]})"
        )
    return sd


def infer_sam_arch(sd: dict) -> dict:
    """Read the segment-anything architecture from a state dict.

    embed dim and patch size from ``patch_embed.proj.weight``; depth from the block count; head dim
    from the relative-position tables (``rel_pos_h``: [2 * size - 1, head_dim]); a block whose
    table spans the whole token grid is a global-attention block, the others give the window size.
    """
    w = sd["image_encoder.patch_embed.proj.weight"]
    embed_dim, patch = int(w.shape[0]), int(w.shape[-1])
    pos = sd.get("image_encoder.pos_embed")
    blocks = sorted({int(k.split(".")[2]) for k in sd if k.startswith("image_encoder.blocks.")})
    depth = len(blocks)
    grid = int(pos.shape[1]) if pos is not None else 1024 // patch
    rel0 = sd.get("image_encoder.blocks.0.attn.rel_pos_h")
    use_rel_pos = rel0 is not None
    head_dim = int(rel0.shape[1]) if use_rel_pos else 64
    global_idx, window = [], 14
    for i in blocks:
        rel = sd.get(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        if rel is None:
            continue
        size = (int(rel.shape[0]) + 1) // 2
        if size == grid:
            global_idx.append(i)
        else:
            window = size
    mlp_hidden = int(sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0])
    out_chans = int(sd["image_encoder.neck.0.weight"].shape[0])
    dec_layers = {int(k.split(".")[3]) for k in sd if k.startswith("mask_decoder.transformer.layers.")}
    dec_mlp = int(sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0])
    n_mask_tokens = int(sd["mask_decoder.mask_tokens.weight"].shape[0])
    iou_layers = {int(k.split(".")[3]) for k in sd if k.startswith("mask_decoder.iou_prediction_head.layers.")}
    return dict(
        embed_dim=embed_dim,
        patch_size=patch,
        img_size=grid * patch,
        depth=depth,
        num_heads=max(1, embed_dim // head_dim),
        mlp_ratio=mlp_hidden / embed_dim,
        use_rel_pos=use_rel_pos,
        window_size=window,
        global_attn_indexes=global_idx,
        out_chans=out_chans,
        decoder_depth=len(dec_layers),
        decoder_mlp_dim=dec_mlp,
        num_multimask_outputs=n_mask_tokens - 1,
        iou_head_depth=len(iou_layers),
        iou_head_hidden_dim=int(sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
        looks_like=EMBED_DIM_TO_TYPE.get(embed_dim),
    )


def build_sam_from_arch(arch: dict):
    """A segment-anything ``Sam`` with the given architecture (random weights)."""
    import torch

    modeling, _ = import_segment_anything()
    grid = arch["img_size"] // arch["patch_size"]
    dim = arch["out_chans"]
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            img_size=arch["img_size"],
            patch_size=arch["patch_size"],
            embed_dim=arch["embed_dim"],
            depth=arch["depth"],
            num_heads=arch["num_heads"],
            mlp_ratio=arch["mlp_ratio"],
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=arch["use_rel_pos"],
            window_size=arch["window_size"],
            global_attn_indexes=tuple(arch["global_attn_indexes"]),
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch["img_size"], arch["img_size"]),
            mask_in_chans=16,
        ),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=arch.get("num_multimask_outputs", 3),
            transformer=modeling.TwoWayTransformer(
                depth=arch.get("decoder_depth", 2), embedding_dim=dim, mlp_dim=arch.get("decoder_mlp_dim", 2048), num_heads=8
            ),
            transformer_dim=dim,
            iou_head_depth=arch.get("iou_head_depth", 3),
            iou_head_hidden_dim=arch.get("iou_head_hidden_dim", 256),
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def load_sam_model(checkpoint: str, model_type: str = "auto"):
    """Build a segment-anything ``Sam`` from a ``.pth`` state dict, checking ``model_type``."""
    if model_type not in ("auto", "vit_b", "vit_l", "vit_h", "default"):
        raise ValueError(f"sam: model_type must be 'auto', 'vit_b', 'vit_l' or 'vit_h', got {model_type!r}")
    sd = load_sam_state_dict(checkpoint)
    asked = "vit_h" if model_type == "default" else model_type
    embed_dim = int(sd["image_encoder.patch_embed.proj.weight"].shape[0])
    if asked != "auto" and embed_dim != TYPE_TO_EMBED_DIM[asked]:
        looks = EMBED_DIM_TO_TYPE.get(embed_dim)
        raise ValueError(
            f"sam: {checkpoint} looks like {looks or 'a non-standard SAM'} (image encoder embed dim {embed_dim}), "
            f"but model_type={model_type!r} (embed dim {TYPE_TO_EMBED_DIM[asked]}) was asked; use model_type='auto'"
            + (f" or model_type={looks!r}" if looks else " (the architecture is then read from the file)")
        )
    try:
        arch = infer_sam_arch(sd)
    except (KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"sam: {checkpoint} is an incomplete segment-anything state dict (missing {exc}); "
            "pass a complete segment-anything checkpoint (image_encoder.*, prompt_encoder.*, mask_decoder.*)"
        ) from None
    sam = build_sam_from_arch(arch)
    problems = state_dict_mismatch(sam.state_dict(), sd)
    if problems:
        kind = arch.get("looks_like") or f"a SAM with embed dim {arch['embed_dim']}"
        raise ValueError(
            f"sam: the state dict in {checkpoint} does not fit {kind} as read from its image encoder: "
            f"{problems}. The file is damaged or was edited: download the official checkpoint again "
            "(or pass the one that matches, e.g. sam:/path/sam_vit_b_01ec64.pth)"
        )
    sam.load_state_dict(sd, strict=True)
    return sam


def state_dict_mismatch(expected: dict, given: dict, show: int = 4) -> str:
    """What keeps ``given`` from loading into a model whose state dict is ``expected``: missing,
    unexpected and mis-shaped keys (the first ``show`` of each), or ``""`` when it fits."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {tuple(given[k].shape)} (expected {tuple(expected[k].shape)})" for k in expected
              if k in given and hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped", shapes)):
        if items:
            more = f" and {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:show])}{more}")
    return "; ".join(parts)

