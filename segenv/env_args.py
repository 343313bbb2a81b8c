"""The argument checks of :class:`segenv.env.SegEnv`: each bad value is a ValueError that names the fix,
raised before any dataset or segmenter is built."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence

import numpy as np

from .initial_states import INITIAL_STATES as _INITIAL_STATE_REGISTRY

ACTION_MODES = ("click", "full")


def check_env_args(*, render_mode: Optional[str], render_modes: Sequence[str], initial_state: str, text_segmenter: Any,
                   action_mode: str, step_cost: float, finish_bonus: float, image_size: int, max_clicks: int,
                   target_iou: Optional[float], box_step: bool) -> None:
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode must be one of {render_modes}, got {render_mode!r}")
    if initial_state not in _INITIAL_STATE_REGISTRY.names():
        raise ValueError(f"initial_state must be one of {_INITIAL_STATE_REGISTRY.names()}, got {initial_state!r}")
    if initial_state == "text" and text_segmenter is None:
        raise ValueError("initial_state='text' starts from a text segmenter's mask: pass "
                         "text_segmenter='sam3:/path/to/sam3' (SAM 3's text model, a local folder) or an object "
                         "with segment(image, text)")
    if action_mode not in ACTION_MODES:
        raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
    for name, value in (("step_cost", step_cost), ("finish_bonus", finish_bonus)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number (a reward in IoU units), got {value!r}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    if target_iou is not None and not 0.0 < target_iou <= 1.0:
        raise ValueError(f"target_iou must be in (0, 1], got {target_iou}")
    if box_step and initial_state == "box" and max_clicks < 2:
        raise ValueError("box_step=True spends the first of max_clicks steps on the box: max_clicks must be >= 2")
