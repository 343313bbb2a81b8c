"""D_traj loaded back: the steps table, its images, and the SFT view for trl (see :mod:`agents.training.traces`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .trace_store import _decode_png, _resolve_merged, unpack_mask
from .traces import TraceConfig, _make_env


class TraceImages:
    """Observation-size images by sample index: from the stored PNGs, or regenerated."""

    def __init__(self, merged: Path, meta: dict) -> None:
        self.meta = meta
        self._env = None
        images_dir = merged / "images"
        if images_dir.exists():
            from datasets import load_from_disk

            self._table = load_from_disk(str(images_dir))
            self._rows = {int(s): i for i, s in enumerate(self._table["sample_index"])}
        else:
            self._table, self._rows = None, {}
        self.get = lru_cache(maxsize=512)(self._get)

    def _get(self, sample_index: int) -> np.ndarray:
        if self._table is not None:
            return _decode_png(self._table[self._rows[int(sample_index)]]["image"])
        if self._env is None:  # regenerate from the dataset (e.g. the procedural shapes)
            cfg = TraceConfig(out="", **{k: v for k, v in self.meta.items() if k in ("env_id", "split", "env_kwargs")},
                              shard=0, num_shards=1)
            self._env = _make_env(cfg, "empty").unwrapped
        from segenv import render as R

        sample = self._env.dataset[int(sample_index)]
        return R.resize_image(sample.image, self._env.image_size)

    def __call__(self, sample_index: int) -> np.ndarray:
        return self.get(int(sample_index))



def to_sft_dataset(
    ds: Any,
    action_format: Any = None,
    prompt_style: str = "llava",
    images: "Optional[TraceImages]" = None,
    overlay_color: str = "green",
    overlay_alpha: float = 0.5,
):
    """``ds`` (steps) with a lazy transform giving ``images`` ([PIL overlay]), conversational
    ``prompt`` (system + user with an image placeholder) and ``completion`` (the action text,
    with the ``Current IOU`` line when ``action_format.iou_line``) for trl's ``SFTTrainer``.

    ``images`` maps a sample index to its observation-size image (:class:`TraceImages`); by
    default the one :func:`load_traces` (``raw=True``) attached to ``ds`` as ``ds.trace_images``.
    """
    if images is None:
        images = getattr(ds, "trace_images", None)
        if images is None:
            raise ValueError("pass images= (a TraceImages): this dataset did not come from load_traces(raw=True)")
    from PIL import Image

    from agents.mllm.prompt import ActionFormat, build_prompt, render_action
    from segenv import render as R
    from segenv.actions import Click

    fmt = action_format or ActionFormat()
    color = R.COLORS[overlay_color] if isinstance(overlay_color, str) else tuple(overlay_color)
    color_word = overlay_color if isinstance(overlay_color, str) else "green"

    def transform(batch: dict) -> dict:
        out: dict[str, list] = {"images": [], "prompt": [], "completion": []}
        for i in range(len(batch["sample_index"])):
            size = int(batch["mask_size"][i])
            mask = unpack_mask(batch["mask"][i], size)
            image = images(int(batch["sample_index"][i]))
            if image.shape[:2] != (size, size):
                image = R.resize_image(image, size)
            overlay = R.overlay_mask(image, mask, color, overlay_alpha)
            system, user = build_prompt(batch["caption"][i], prompt_style, color=color_word)
            prompt = [] if system is None else [{"role": "system", "content": [{"type": "text", "text": system}]}]
            prompt.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]})
            click = Click(batch["x"][i], batch["y"][i], bool(batch["positive"][i]))
            iou = float(batch["iou_before"][i]) if fmt.iou_line else None
            answer = render_action(click, fmt, iou=iou)
            out["images"].append([Image.fromarray(overlay)])
            out["prompt"].append(prompt)
            out["completion"].append([{"role": "assistant", "content": [{"type": "text", "text": answer}]}])
        return out

    return ds.with_transform(transform)


def open_traces(path: "str | Path") -> tuple[Any, TraceImages]:
    """``(steps dataset, image lookup)`` of the traces at ``path`` (merging first if needed)."""
    from datasets import load_from_disk

    merged, meta = _resolve_merged(path)
    return load_from_disk(str(merged / "steps")), TraceImages(merged, meta)


def load_traces(
    path: "str | Path",
    action_format: Any = None,
    prompt_style: str = "llava",
    raw: bool = False,
    overlay_color: str = "green",
):
    """The traces at ``path`` (an ``out`` folder or its ``merged`` folder) as a ``datasets.Dataset``.

    ``raw=True``: the steps table itself. Otherwise the SFT view of :func:`to_sft_dataset`.
    """
    ds, images = open_traces(path)
    if raw:
        ds.trace_images = images  # lets to_sft_dataset(ds, ...) find the images
        return ds
    return to_sft_dataset(ds, action_format, prompt_style, images, overlay_color)



__all__ = ["TraceImages", "load_traces", "open_traces", "to_sft_dataset"]
