"""D_traj as trl SFT data: one row per kept click or end step (Finish / No Object Found), the overlay and the chat built on access.

:func:`load_traces` opens the traces (one ``datasets.Dataset``, a row per trace:
:mod:`agents.training.trace_store`). :func:`to_sft_dataset` indexes its kept clicks and, through
``with_transform``, gives each as trl's ``SFTTrainer`` wants it (completion-only loss):

* ``images``: ``[overlay]``, the trace's image with the mask BEFORE the click blended in
  (:func:`segenv.render.overlay_mask`: exactly the env's ``overlay`` observation);
* ``prompt``: the conversation (system message if the style has one, user turn = image + text of
  :func:`agents.mllm.prompt.build_prompt`);
* ``completion``: the assistant turn, ``Current IOU: NN`` (the IoU of the mask before the click;
  SegAgent's format, on by default, off with ``ActionFormat(iou_line=False)``), then the action
  (:func:`agents.mllm.prompt.render_action`).

Traces made with ``store_images=False`` have no ``image``: it is regenerated from the env's
dataset, as the traces' recorded config (``info.description``) names it.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import numpy.typing as npt

from .trace_store import all_shards_done, is_merged, load_finished_chunks, merge, read_metadata, trace_config_of

log = logging.getLogger(__name__)

#: the SFT targets' format when none is given: decimals, (x, y), SegAgent's ``Current IOU`` line first
DEFAULT_SFT_FORMAT = {"iou_line": True}


def load_traces(path: "str | Path", partial: bool = False) -> Any:
    """The traces at ``path`` (an ``out`` folder of ``segagent traces``) as a ``datasets.Dataset``.

    Merges first when every shard is done but the merge has not run (``merge=False``); a folder
    with unfinished shards is an error that says which, unless ``partial``: then the chunks
    finished so far are used (logged), and the folder is left as it is.
    """
    from datasets import load_from_disk

    path = Path(path)
    if not is_merged(path):
        if not all_shards_done(path) and partial:
            ds = load_finished_chunks(path)
            log.warning("%s is not finished: using the %d traces of its finished chunks", path, len(ds))
            return ds
        if not all_shards_done(path):
            n = int(read_metadata(path)["config"]["num_shards"])
            raise ValueError(f"{path} is not finished ({n} shards, not all done): run the missing shards, then load")
        merge(path)
    return load_from_disk(str(path))


def _regenerated_images(traces: Any) -> Callable[[int], npt.NDArray[np.uint8]]:
    """Observation-size images by sample index, rebuilt from the env's dataset."""
    from segenv import render as R

    from .traces import TraceConfig, _make_env

    made = trace_config_of(traces)
    config = TraceConfig(out="", env_id=made["env_id"], split=made["split"], env_kwargs=made["env_kwargs"],
                         shard=0, num_shards=1)
    env = _make_env(config, "empty").unwrapped

    @lru_cache(maxsize=256)
    def image(sample_index: int) -> npt.NDArray[np.uint8]:
        return R.resize_image(env.dataset[int(sample_index)].image, env.image_size)

    return image


def to_sft_dataset(
    traces: Any,
    action_format: Any = None,
    prompt_style: str = "llava",
    overlay_color: str = "green",
    overlay_alpha: float = 0.5,
) -> Any:
    """One row per kept click or end step of ``traces`` (:func:`load_traces`), with the lazy ``images`` /
    ``prompt`` / ``completion`` columns of the module docstring.

    ``action_format`` (:class:`agents.mllm.prompt.ActionFormat`): None = :data:`DEFAULT_SFT_FORMAT`
    (decimals in (x, y) order, with the ``Current IOU`` line).
    """
    from datasets import Dataset
    from PIL import Image

    from agents.mllm.prompt import ActionFormat, build_prompt, render_action
    from segenv import render as R
    from segenv.actions import NO_OBJECT, STOP, Click

    END_ACTIONS = {"finish": STOP, "no_object": NO_OBJECT}  # STOP is the Finish action

    fmt = action_format or ActionFormat(**DEFAULT_SFT_FORMAT)
    color = R.COLORS[overlay_color] if isinstance(overlay_color, str) else tuple(overlay_color)
    color_word = overlay_color if isinstance(overlay_color, str) else "green"
    counts = [len(x) for x in traces.select_columns(["x"])["x"]]
    index = Dataset.from_dict({"trace": [t for t, n in enumerate(counts) for _ in range(n)],
                               "step": [k for n in counts for k in range(n)]})
    regenerate = _regenerated_images(traces) if len(traces) and traces[0]["image"] is None else None

    def transform(batch: dict) -> dict:
        out: dict[str, list] = {"images": [], "prompt": [], "completion": []}
        for t, k in zip(batch["trace"], batch["step"]):
            row = traces[int(t)]
            image = np.asarray(row["image"].convert("RGB")) if regenerate is None else regenerate(row["sample_index"])
            mask = np.asarray(row["masks"][k]).astype(bool)
            if image.shape[:2] != mask.shape:
                image = R.resize_image(image, mask.shape[0])
            system, user = build_prompt(row["caption"], prompt_style, color=color_word)
            prompt = [] if system is None else [{"role": "system", "content": [{"type": "text", "text": system}]}]
            prompt.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]})
            kind = row["kind"][k] if row.get("kind") else "click"  # traces made before end steps: clicks only
            action = END_ACTIONS[kind] if kind in END_ACTIONS else Click(row["x"][k], row["y"][k], bool(row["positive"][k]))
            answer = render_action(action, fmt, iou=float(row["iou_before"][k]) if fmt.iou_line else None)
            out["images"].append([Image.fromarray(R.overlay_mask(image, mask, color, overlay_alpha))])
            out["prompt"].append(prompt)
            out["completion"].append([{"role": "assistant", "content": [{"type": "text", "text": answer}]}])
        return out

    return index.with_transform(transform)


__all__ = ["DEFAULT_SFT_FORMAT", "load_traces", "to_sft_dataset"]
