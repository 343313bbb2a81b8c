"""``clicknet``: the learned tiny click segmenter (RITM / SimpleClick family) behind the Segmenter protocol.

SegAgent's second segmenter family is SimpleClick: image + click maps + the previous mask in,
mask logits out, trained with iterative click simulation (RITM). clicknet is its small sibling,
trained by this project on the procedural train splits (``python -m agents.training.clicknet``,
docs/clicknet.md) and shipped as a 1 MB fp16 checkpoint, so ``segmenter="clicknet"`` needs no path.

Cost split as SAM's: :meth:`ClickNetSegmenter.set_image` runs the image encoder once per
episode and caches its features; :meth:`~ClickNetSegmenter.predict` runs only the light click
decoder; :meth:`~ClickNetSegmenter.predict_many` decodes K prompt sets in one batched forward
(on one CPU core that costs about as much per row as single calls, since the decoder is
compute-bound: docs/benchmarks.md, "Vector envs"; the win is on GPU or free cores), and
:meth:`~ClickNetSegmenter.predict_batch` does the same across images: the sub-envs of a vector
env each hold a :meth:`~ClickNetSegmenter.spawn`-ed segmenter (same model, own cached features).

Conventions: the image is resized so its longest side is ``work_size`` (224) and padded
bottom / right; points are ``(x, y)`` pixel coordinates of the original image (the env passes
pixel indices ``(col, row)``, as SAM's predictor takes them); ``prev_logits`` is what the last ``predict`` returned (float32
``[S/2, S/2]`` logits at half the work size), fed back as the previous-mask input;
mask = logits > 0 after bilinear upsampling. It was trained on procedural images only: on
natural images (RefCOCO, DAVIS) use a SAM-family backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .base import Prompt, SegmenterBase

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "clicknet"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
NO_PREV_LOGIT = -30.0  # a batch row without previous logits: probability ~1e-13, as the zeros of a lone call


class CheckpointError(ValueError):
    """A clicknet checkpoint folder is missing, corrupt or does not match the network."""


def load_clicknet(path: "str | Path" = DEFAULT_CHECKPOINT, device: str = "cpu"):
    """Load a :class:`~segenv.segmenters.clicknet_model.ClickNet` from a folder (eval mode, fp32)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .clicknet_model import ClickNet, ClickNetConfig

    path = Path(path)
    if path.is_file():
        raise CheckpointError(f"clicknet: {path} is a file; pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"clicknet: checkpoint folder {path} lacks {', '.join(missing)}; pass a folder written by "
            "save_clicknet / `python -m agents.training.clicknet`, or omit the path for the shipped model"
        )
    try:
        cfg = ClickNetConfig.from_dict(json.loads((path / CONFIG_NAME).read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"clicknet: {path / CONFIG_NAME} is not a valid clicknet config ({exc})") from exc
    try:
        state = load_file(str(path / WEIGHTS_NAME))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"clicknet: {path / WEIGHTS_NAME} is not a readable safetensors file ({exc})") from exc
    model = ClickNet(cfg)
    expected = model.state_dict()
    missing_keys = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing_keys or unexpected or wrong:
        raise CheckpointError(
            f"clicknet: {path / WEIGHTS_NAME} does not match the network in {CONFIG_NAME}: "
            f"missing {missing_keys[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(torch.device(device)).eval()


def save_clicknet(model, path: "str | Path", dtype: str = "float16") -> Path:
    """Write ``config.json`` + ``model.safetensors`` (floating tensors in ``dtype``)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cast = getattr(torch, dtype)
    state = {k: (v.detach().to(cast) if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS_NAME))
    (path / CONFIG_NAME).write_text(json.dumps({"model_type": "clicknet", **model.cfg.to_dict()}, indent=2))
    return path


class ClickNetSegmenter(SegmenterBase):
    """The Segmenter protocol over a :class:`ClickNet` (see the module docstring)."""

    name = "clicknet"

    def __init__(self, checkpoint: "str | Path | None" = None, model: Any = None, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        if model is not None:  # a live model (e.g. during training): used as is, never modified
            self.model = model.eval()
        else:
            from .clicknet_model import fuse_batchnorm

            self.model = fuse_batchnorm(load_clicknet(checkpoint or DEFAULT_CHECKPOINT, device))
        self.device = next(self.model.parameters()).device
        self.work_size = int(self.model.cfg.work_size)
        self._feats: Optional[tuple] = None
        self._scale = 1.0
        self._valid: tuple[int, int] = (self.work_size, self.work_size)
        self.encoder_calls = 0
        self.decoder_calls = 0

    # ---------------------------------------------------------------- per image
    def set_image(self, image: npt.NDArray[np.uint8]) -> None:
        self._check_image(image)
        h, w = image.shape[:2]
        s = self.work_size
        self._scale = s / max(h, w)
        vh, vw = max(1, min(s, round(h * self._scale))), max(1, min(s, round(w * self._scale)))
        self._valid = (vh, vw)
        if (vh, vw) != (h, w):
            interp = cv2.INTER_AREA if self._scale < 1.0 else cv2.INTER_LINEAR
            image = cv2.resize(image, (vw, vh), interpolation=interp)
        work = np.zeros((s, s, 3), np.uint8)
        work[:vh, :vw] = image
        torch = self._torch
        with torch.inference_mode():
            self._feats = self.model.encode(torch.from_numpy(work).unsqueeze(0).to(self.device))
        self.encoder_calls += 1

    # ---------------------------------------------------------------- per click
    def predict(self, points, labels, box=None, prev_logits: Any = None) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        return self.predict_many([Prompt(points, labels, box, prev_logits)])[0]  # predict_many checks the prompt

    def predict_many(self, prompts: Sequence[Prompt]) -> list[tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]]:
        """Decode K prompt sets on the cached image in ONE batched forward."""
        if self._feats is None:
            raise RuntimeError(f"{self.name}: call set_image(image) before predict(...)")
        return self.predict_batch([(self, p) for p in prompts])

    def predict_batch(
        self, requests: Sequence[tuple[Any, Prompt]]
    ) -> list[tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]]:
        """``(segmenter, prompt)`` pairs, each segmenter holding its own image -> ``(mask, logits)`` each.

        Rows whose segmenter is a clicknet over THIS model (``self`` and its :meth:`spawn`-ed
        siblings) are decoded in ONE forward over their stacked cached features (a vector env's
        sub-envs, one image each); any other row falls back to its own ``predict``.
        """
        out: list[Any] = [None] * len(requests)
        mine = [i for i, (seg, _) in enumerate(requests) if isinstance(seg, ClickNetSegmenter) and seg.model is self.model]
        for i, (seg, p) in enumerate(requests):
            if i not in mine:
                out[i] = seg.predict(p.points, p.labels, p.box, p.prev_logits)
        if mine:
            for i, result in zip(mine, self._decode_rows([requests[i] for i in mine])):
                out[i] = result
        return out

    def spawn(self) -> "ClickNetSegmenter":
        """A segmenter on the same model with its own image cache (no image set yet): one per
        sub-env of a vector env, so :meth:`predict_batch` can decode all of them in one forward."""
        return ClickNetSegmenter(model=self.model)

    def _decode_rows(self, rows: Sequence[tuple["ClickNetSegmenter", Prompt]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One decoder forward over ``rows`` (each segmenter's own cached features and scale)."""
        for seg, _ in rows:
            if seg._feats is None:
                raise RuntimeError(f"{self.name}: call set_image(image) before predict(...)")
        if not rows:
            return []
        torch = self._torch
        checked = [seg._check_prompt(p.points, p.labels, p.box) for seg, p in rows]
        k = len(checked)
        n = max(1, max(len(p) for p, _, _ in checked))
        half = self.work_size // 2
        pts = np.zeros((k, n, 2), np.float32)
        lab = np.zeros((k, n), np.int64)
        val = np.zeros((k, n), bool)
        boxes = np.full((k, 4), np.nan, np.float32)
        prev = np.full((k, 1, half, half), NO_PREV_LOGIT, np.float32)  # sigmoid ~ 0: "no previous mask"
        has_prev = False
        for i, ((p, l, b), (seg, prompt)) in enumerate(zip(checked, rows)):
            pts[i, : len(p)] = (p + 0.5) * seg._scale  # pixel index -> its centre, in work pixels
            lab[i, : len(l)] = l
            val[i, : len(l)] = True
            if b is not None:
                boxes[i] = b * seg._scale
            if prompt.prev_logits is not None:
                prev[i, 0] = self._check_prev(prompt.prev_logits)
                has_prev = True
        has_box = bool(np.isfinite(boxes).all(axis=1).any())
        first = rows[0][0]._feats
        if all(seg._feats is first for seg, _ in rows):
            feats = first  # one image, K prompt sets: the decoder expands the batch-1 features
        else:
            feats = tuple(torch.cat([seg._feats[j] for seg, _ in rows]) for j in range(len(first)))
        with torch.inference_mode():
            logits = self.model.decode(
                feats,
                torch.from_numpy(pts).to(self.device),
                torch.from_numpy(lab).to(self.device),
                torch.from_numpy(val).to(self.device),
                torch.from_numpy(prev).to(self.device) if has_prev else None,
                torch.from_numpy(boxes).to(self.device) if has_box else None,
            )
            full = torch.nn.functional.interpolate(logits, scale_factor=2.0, mode="bilinear", align_corners=False)
        self.decoder_calls += 1
        low = logits[:, 0].float().cpu().numpy()
        full_np = full[:, 0].float().cpu().numpy()
        return [(seg._to_mask(full_np[i]), low[i].copy()) for i, (seg, _) in enumerate(rows)]

    def _check_prev(self, prev: Any) -> npt.NDArray[np.float32]:
        arr = np.asarray(prev, np.float32)
        half = self.work_size // 2
        if arr.size != half * half:
            raise ValueError(
                f"{self.name}: prev_logits must be the [{half}, {half}] logits this segmenter returned, got shape {arr.shape}"
            )
        return arr.reshape(half, half)

    def _to_mask(self, logits_full: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        assert self.image_shape is not None
        vh, vw = self._valid
        crop = logits_full[:vh, :vw]
        h, w = self.image_shape
        if (vh, vw) != (h, w):
            crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
        return crop > 0.0
