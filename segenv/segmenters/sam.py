"""SAM (segment-anything's own modeling code) as an interactive segmenter.

Protocol (REFERENCE.md section 4, "Segmenter feedback, SAM"): every step calls the mask decoder
with **all clicks so far**, the box if any, and the previous step's chosen low-res logits as
``mask_input``; multimask output, keep the highest-scoring mask; mask = logits > 0.

* The image encoder runs **once** per :meth:`SamSegmenter.set_image` (counted in
  ``encoder_calls``); every :meth:`~SamSegmenter.predict` only runs the prompt encoder and the
  mask decoder on the cached embedding (counted in ``decoder_calls``, one per decoder call).
* Preprocessing is our own (``SamPredictor`` / ``ResizeLongestSide`` import torchvision, which is
  not installed): resize the longest side to the model's input size (1024) with cv2
  ``INTER_LINEAR`` (new side = ``int(side * scale + 0.5)``, as segment-anything), then
  ``sam.preprocess`` (normalise + pad bottom-right). Click / box coordinates are scaled per axis
  by ``new_w / W`` and ``new_h / H``, i.e. ``1024 / max(H, W)`` up to the rounding of the resized
  side (this is what segment-anything's ``apply_coords`` does). Masks come back with
  ``sam.postprocess_masks(lowres, input_size, original_size) > sam.mask_threshold``.
* ``logits`` returned by ``predict`` are a **numpy float32 array of shape (1, 256, 256)**: the
  chosen low-res logits (256 = 4 x the 64x64 embedding grid of a 1024 model; smaller test
  models give 4 x their grid). Pass them back as
  ``prev_logits``; torch tensors and (256, 256) / (1, 1, 256, 256) shapes are accepted too.
  ``last_scores`` holds the predicted IoU of the chosen mask(s) of the latest call.
* ``predict_many``: looped on CPU (one decoder call per prompt set is faster there, TOOLCHAIN.md),
  batched on CUDA. Batches group prompt sets of the same structure (number of points, box or not,
  previous logits or not) into one decoder call with the embedding kept at batch 1 (the decoder
  repeats it). Padding the point lists with ``label = -1`` points would also batch mixed sets,
  but SAM's decoder attends over every prompt token, so an extra "not a point" token changes
  the output: grouping keeps batched results equal to looped ones.

Checkpoints: a segment-anything ``.pth`` state dict (``sam_vit_b_01ec64.pth`` etc.). The
architecture is read from the state dict (embed dim, depth, heads from the relative-position
tables, global-attention blocks from their table size), so tiny test models load the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from functools import partial
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .base import Prompt, SegmenterBase

ENV_CHECKPOINT = "SEGAGENT_SAM_CHECKPOINT"
# embed dim of image_encoder.patch_embed.proj.weight -> segment-anything model type
EMBED_DIM_TO_TYPE = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
TYPE_TO_EMBED_DIM = {v: k for k, v in EMBED_DIM_TO_TYPE.items()}
MULTIMASK_MODES = ("always", "first", "never")


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
# helpers shared with the transformers backend (hf_sam.py)
# --------------------------------------------------------------------------------------------
def resolve_device(device: str = "auto") -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def longest_side_shape(h: int, w: int, target: int) -> tuple[int, int]:
    """(new_h, new_w) with the longest side = ``target`` (segment-anything's rounding)."""
    scale = target / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_rgb(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    if image.shape[:2] == (new_h, new_w):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def scale_xy(xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Scale (..., 2k) arrays of (x, y[, x, y]) pixel coordinates per axis."""
    out = np.array(xy, dtype=np.float32, copy=True)
    out[..., 0::2] *= sx
    out[..., 1::2] *= sy
    return out


def as_prev_logits(prev: Any, size: tuple[int, int], device, dtype):
    """Previous low-res logits (numpy or torch; (h, w), (1, h, w) or (1, 1, h, w)) -> [1, h, w]."""
    import torch

    if prev is None:
        return None
    t = prev if isinstance(prev, torch.Tensor) else torch.from_numpy(np.asarray(prev, dtype=np.float32))
    t = t.detach()
    if t.ndim == 4 and t.shape[:2] == (1, 1):
        t = t[0]
    elif t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] != 1 or tuple(t.shape[1:]) != tuple(size):
        raise ValueError(
            f"prev_logits must be the low-res logits this segmenter returned, shape (1, {size[0]}, {size[1]}); "
            f"got {tuple(t.shape)}"
        )
    return t.to(device=device, dtype=dtype)


class _Prepared:
    """One prompt set in the model's input frame (torch tensors on the model's device)."""

    __slots__ = ("coords", "labels", "box", "mask", "key")

    def __init__(self, coords, labels, box, mask):
        self.coords, self.labels, self.box, self.mask = coords, labels, box, mask
        self.key = (int(coords.shape[0]), box is not None, mask is not None)


def group_by_key(prepared: Sequence[_Prepared]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.key, []).append(i)
    return groups


class _SamFamilyBase(SegmenterBase):
    """Plumbing shared by the segment-anything and transformers backends."""

    multimask: str = "always"
    batch_many: Any = "auto"
    device: str = "cpu"

    def _init_common(self, multimask: str, batch_many: Any) -> None:
        if multimask not in MULTIMASK_MODES:
            raise ValueError(f"{self.name}: multimask must be one of {MULTIMASK_MODES}, got {multimask!r}")
        if batch_many not in ("auto", True, False):
            raise ValueError(f"{self.name}: batch_many must be 'auto', True or False, got {batch_many!r}")
        self.multimask = multimask
        self.batch_many = batch_many
        self.encoder_calls = 0
        self.decoder_calls = 0
        self.last_scores: list[float] = []
        self._features = None

    def _use_multimask(self, key: tuple) -> bool:
        n_points, has_box, has_mask = key
        if self.multimask == "always":
            return True
        if self.multimask == "never":
            return False
        return n_points == 1 and not has_box and not has_mask  # "first": the very first click only

    def _batched(self) -> bool:
        if self.batch_many == "auto":
            return str(self.device).startswith("cuda")
        return bool(self.batch_many)

    # backends implement: _prepare(points, labels, box, prev) -> _Prepared,
    # _decode(list[_Prepared]) -> (list[mask], list[logits], list[score])
    def _prepare(self, points, labels, box, prev_logits) -> _Prepared:  # pragma: no cover
        raise NotImplementedError

    def _decode(self, group: Sequence[_Prepared]):  # pragma: no cover
        raise NotImplementedError

    def _need_image(self) -> None:
        if self._features is None:
            raise RuntimeError(f"{self.name}: call set_image(image) before predict(...)")

    def predict(self, points, labels, box=None, prev_logits=None):
        points, labels, box = self._check_prompt(points, labels, box)
        self._need_image()
        masks, logits, scores = self._decode([self._prepare(points, labels, box, prev_logits)])
        self.last_scores = scores
        return masks[0], logits[0]

    def predict_many(self, prompts: Sequence[Prompt]):
        self._need_image()
        if not self._batched():
            out, scores = [], []
            for p in prompts:
                out.append(self.predict(p.points, p.labels, p.box, p.prev_logits))
                scores.extend(self.last_scores)
            self.last_scores = scores
            return out
        prepared = []
        for p in prompts:
            pts, lab, box = self._check_prompt(p.points, p.labels, p.box)
            prepared.append(self._prepare(pts, lab, box, p.prev_logits))
        results: list = [None] * len(prepared)
        scores: list = [0.0] * len(prepared)
        for idx in group_by_key(prepared).values():
            masks, logits, sc = self._decode([prepared[i] for i in idx])
            for j, i in enumerate(idx):
                results[i] = (masks[j], logits[j])
                scores[i] = sc[j]
        self.last_scores = scores
        return results


# --------------------------------------------------------------------------------------------
# checkpoint reading and architecture inference
# --------------------------------------------------------------------------------------------
def _how_to_set() -> str:
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
        raise FileNotFoundError(f"sam: checkpoint file not found: {path!r}. {_how_to_set()}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(path)
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure: say what was expected
            raise ValueError(f"sam: could not read {path} as a torch state dict ({type(exc).__name__}: {exc})") from exc
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
        raise ValueError(f"sam: {checkpoint} is an incomplete segment-anything state dict (missing {exc})") from exc
    sam = build_sam_from_arch(arch)
    try:
        sam.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"sam: the state dict in {checkpoint} does not fit the architecture read from it: {exc}") from exc
    return sam


# --------------------------------------------------------------------------------------------
# the segmenter
# --------------------------------------------------------------------------------------------
class SamSegmenter(_SamFamilyBase):
    """segment-anything SAM behind the segmenter protocol.

    Args:
        checkpoint: path to a segment-anything ``.pth`` state dict (default: env
            ``SEGAGENT_SAM_CHECKPOINT``); not needed when ``model`` is given.
        model_type: ``"auto"`` (read the architecture from the state dict) or ``"vit_b"`` /
            ``"vit_l"`` / ``"vit_h"`` (checked against the state dict's embed dim).
        device: ``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        model: an already built ``segment_anything.modeling.Sam`` (tests, benchmarks).
        multimask: ``"always"`` (REFERENCE.md: 3 masks every step, keep the best score),
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
        if model is None:
            checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT) or None
            if not checkpoint:
                raise FileNotFoundError(f"sam: no checkpoint given; {_how_to_set()}")
            model = load_sam_model(checkpoint, model_type)
        self.checkpoint = checkpoint
        self.model = model.eval().to(self.device)
        self.img_size = int(self.model.image_encoder.img_size)
        self.lowres_size = tuple(int(s) for s in self.model.prompt_encoder.mask_input_size)
        with torch.inference_mode():
            self._dense_pe = self.model.prompt_encoder.get_dense_pe()
        self._input_size: tuple[int, int] = (0, 0)
        self._scale = (1.0, 1.0)

    def set_image(self, image: npt.NDArray[np.uint8]) -> None:
        import torch

        self._check_image(image)
        h, w = image.shape[:2]
        nh, nw = longest_side_shape(h, w, self.img_size)
        resized = resize_rgb(image, nh, nw)
        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).contiguous().float()[None]
        with torch.inference_mode():
            x = self.model.preprocess(x)
            self._features = self.model.image_encoder(x)
        self.encoder_calls += 1
        self._input_size = (nh, nw)
        self._scale = (nw / w, nh / h)

    def _prepare(self, points, labels, box, prev_logits) -> _Prepared:
        import torch

        sx, sy = self._scale
        coords = torch.from_numpy(scale_xy(points, sx, sy)).to(self.device)
        lab = torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
        bx = torch.from_numpy(scale_xy(box, sx, sy)).to(self.device) if box is not None else None
        mask = as_prev_logits(prev_logits, self.lowres_size, self.device, torch.float32)
        return _Prepared(coords, lab, bx, mask)

    def _decode(self, group: Sequence[_Prepared]):
        import torch

        n = group[0].key[0]
        mm = self._use_multimask(group[0].key)
        with torch.inference_mode():
            points = (torch.stack([p.coords for p in group]), torch.stack([p.labels for p in group])) if n > 0 else None
            boxes = torch.stack([p.box for p in group]) if group[0].box is not None else None
            masks = torch.stack([p.mask for p in group]) if group[0].mask is not None else None
            sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
            low, iou = self.model.mask_decoder(
                image_embeddings=self._features,
                image_pe=self._dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=mm,
            )
            self.decoder_calls += 1
            best = iou.argmax(dim=1)
            rows = torch.arange(low.shape[0], device=low.device)
            chosen = low[rows, best]  # [B, 256, 256]
            scores = iou[rows, best]
            full = self.model.postprocess_masks(chosen[:, None], self._input_size, self.image_shape)
            full = (full[:, 0] > self.model.mask_threshold).cpu().numpy()
            chosen = chosen.float().cpu().numpy()
        return (
            [full[i] for i in range(len(group))],
            [chosen[i : i + 1].copy() for i in range(len(group))],
            [float(s) for s in scores.float().cpu()],
        )
