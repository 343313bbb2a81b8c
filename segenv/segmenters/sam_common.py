"""What every SAM-family adapter shares: preprocessing, prompt transform, feedback and the predict flow.

One adapter per model family subclasses :class:`SamFamilyBase` and fills in four hooks; all else
(SegAgent's SAM protocol, docs/conventions.md#segmenter-feedback) lives here once:

* ``set_image``: resize the image into the model's input frame and run the image encoder
  **once** (``encoder_calls``). Frame: longest side to ``img_size`` with segment-anything's
  rounding (``new = int(side * scale + 0.5)``), padded bottom-right by the adapter (SAM, SAM-HQ);
  or ``img_size x img_size`` with the aspect not kept (``square_input = True``: SAM 2). The
  resize is segment-anything's (``ResizeLongestSide.apply_image``): PIL bilinear on the uint8
  image, antialiased when it shrinks (docs/conventions.md#segmenter-feedback), for every family.
* prompts: click / box pixel coordinates scaled per axis by ``new_w / W`` and ``new_h / H`` (as
  segment-anything's ``apply_coords``); previous low-res logits accepted as numpy or torch, shaped
  (h, w), (1, h, w) or (1, 1, h, w), checked against the model's low-res size.
* ``predict``: one decoder call with all clicks so far, the box if any and the previous chosen
  low-res logits; multimask output (``multimask="always"``; ``"first"``: only for a lone first
  click; ``"never"``), keep the mask with the best predicted IoU; mask = upscaled logits >
  ``mask_threshold`` (0). Returns ``(mask HxW bool, logits float32 (1, h, w))``, ``h = w = 256`` for
  the real 1024-px models; ``last_scores`` holds the chosen masks' predicted IoU.
* ``predict_many``: looped on CPU (one decoder call per prompt set is faster there, docs/conventions.md#toolchain-notes),
  batched on CUDA: prompt sets of the same structure (number of points, box or not, previous
  logits or not) share one decoder call. Padding point lists with ``label = -1`` points would
  batch mixed sets too, but SAM's decoder attends over every prompt token, so an extra "not a
  point" token changes the output: grouping keeps batched results equal to looped ones.

Hooks an adapter implements (see ``sam.py``, ``hf_sam1.py``, ``hf_sam2.py``):

* ``_encode(resized) -> features``: HxWx3 uint8 image already in the input frame -> whatever
  the decoder needs (padding / normalisation are the adapter's, as each model does them).
* ``_run_decoder(group, multimask) -> (low [B, C, h, w], iou [B, C])``: one decoder call for B
  :class:`PreparedPrompt` of the same ``key``.
* ``_upscale(chosen [B, 1, h, w]) -> [B, 1, H, W]`` logits at the original image size.
* attributes ``img_size``, ``lowres_size``, ``device`` (a ``torch.device`` from
  :func:`segenv.device.resolve_device`), ``dtype`` (of previous logits fed back),
  and optionally ``square_input`` / ``mask_threshold``.
"""

from __future__ import annotations

import copy

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from .base import Prompt, SegmenterBase

MULTIMASK_MODES = ("always", "first", "never")


def longest_side_shape(h: int, w: int, target: int) -> tuple[int, int]:
    """(new_h, new_w) with the longest side = ``target`` (segment-anything's rounding)."""
    scale = target / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_rgb(image: npt.NDArray[np.uint8], new_h: int, new_w: int) -> npt.NDArray[np.uint8]:
    """HxWx3 uint8 -> new_h x new_w x 3 uint8 as segment-anything's ``ResizeLongestSide.apply_image``:
    PIL bilinear, which antialiases when it shrinks (cv2's ``INTER_LINEAR`` aliases on large frames)."""
    if image.shape[:2] == (new_h, new_w):
        return np.ascontiguousarray(image)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.array(pil.resize((new_w, new_h), Image.Resampling.BILINEAR))


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


class PreparedPrompt:
    """One prompt set in the model's input frame (torch tensors on the model's device).

    ``coords`` [N, 2] float32, ``labels`` [N] int64, ``box`` [4] float32 or None, ``mask`` [1, h, w]
    previous logits or None; ``key`` = (N, has box, has mask): sets with equal keys batch together.
    """

    __slots__ = ("coords", "labels", "box", "mask", "key")

    def __init__(self, coords, labels, box, mask):
        self.coords, self.labels, self.box, self.mask = coords, labels, box, mask
        self.key = (int(coords.shape[0]), box is not None, mask is not None)


_Prepared = PreparedPrompt  # the old private name


def group_by_key(prepared: Sequence[PreparedPrompt]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.key, []).append(i)
    return groups


class SamFamilyBase(SegmenterBase):
    """The shared SAM flow; subclasses are one adapter per model family (module docstring)."""

    multimask: str = "always"
    batch_many: Any = "auto"
    device: Any = None  # torch.device (segenv.device.resolve_device)
    dtype: Any = None  # torch dtype of the previous logits fed back (the model's dtype)
    square_input: bool = False  # True: resize to img_size x img_size (SAM 2); else longest side
    mask_threshold: float = 0.0
    img_size: int = 1024
    lowres_size: tuple[int, int] = (256, 256)

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
        self._input_size: tuple[int, int] = (0, 0)
        self._scale = (1.0, 1.0)

    def spawn(self) -> "SamFamilyBase":
        """A segmenter on the same model (shared, not copied) with its own image state: one per
        sub-env of a vector env, so K sub-envs hold one set of weights. ``predict_batch`` loops
        (a batched decoder is slower on CPU; each row has its own image embedding)."""
        twin = copy.copy(self)
        twin._init_common(self.multimask, self.batch_many)  # fresh features, scale, counters
        twin.image_shape = None
        return twin

    def _use_multimask(self, key: tuple) -> bool:
        n_points, has_box, has_mask = key
        if self.multimask == "always":
            return True
        if self.multimask == "never":
            return False
        return n_points == 1 and not has_box and not has_mask  # "first": the very first click only

    def _batched(self) -> bool:
        if self.batch_many == "auto":
            return self.device.type == "cuda"
        return bool(self.batch_many)

    # ---------------------------------------------------------------- hooks (one per family)
    def _encode(self, resized: npt.NDArray[np.uint8]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _run_decoder(self, group: Sequence[PreparedPrompt], multimask: bool):  # pragma: no cover
        raise NotImplementedError

    def _upscale(self, chosen):  # pragma: no cover
        raise NotImplementedError

    # ---------------------------------------------------------------- image
    def _frame(self, h: int, w: int) -> tuple[int, int]:
        """(new_h, new_w) of the image inside the model's input frame."""
        if self.square_input:
            return self.img_size, self.img_size
        return longest_side_shape(h, w, self.img_size)

    def set_image(self, image: npt.NDArray[np.uint8]) -> None:
        import torch

        self._check_image(image)
        h, w = image.shape[:2]
        nh, nw = self._frame(h, w)
        resized = resize_rgb(image, nh, nw)
        with torch.inference_mode():
            self._features = self._encode(resized)
        self.encoder_calls += 1
        self._input_size = (nh, nw)
        self._scale = (nw / w, nh / h)

    def _need_image(self) -> None:
        if self._features is None:
            raise RuntimeError(f"{self.name}: call set_image(image) before predict(...)")

    # ---------------------------------------------------------------- prompts and decoding
    def _prepare(self, points, labels, box, prev_logits) -> PreparedPrompt:
        import torch

        sx, sy = self._scale
        coords = torch.from_numpy(scale_xy(points, sx, sy)).to(self.device)
        lab = torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
        bx = torch.from_numpy(scale_xy(box, sx, sy)).to(self.device) if box is not None else None
        mask = as_prev_logits(prev_logits, self.lowres_size, self.device, self.dtype)
        return PreparedPrompt(coords, lab, bx, mask)

    def _decode(self, group: Sequence[PreparedPrompt]):
        """One decoder call -> (masks HxW bool, chosen logits (1, h, w) float32, scores) per set."""
        import torch

        b = len(group)
        with torch.inference_mode():
            low, iou = self._run_decoder(group, self._use_multimask(group[0].key))
            self.decoder_calls += 1
            low, iou = low.float(), iou.float()  # [B, C, h, w], [B, C]
            best = iou.argmax(dim=1)
            rows = torch.arange(b, device=low.device)
            chosen = low[rows, best]  # [B, h, w]
            scores = iou[rows, best]
            full = self._upscale(chosen[:, None])  # [B, 1, H, W]
            full = (full[:, 0] > self.mask_threshold).cpu().numpy()
            chosen = chosen.cpu().numpy()
        return (
            [full[i] for i in range(b)],
            [chosen[i : i + 1].copy() for i in range(b)],
            [float(s) for s in scores.cpu()],
        )

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
