"""The env's observation space (image, overlay, mask at S x S, the referring text) and the text's limits."""

from __future__ import annotations

import string

import numpy as np
from gymnasium import spaces

TEXT_CHARSET = string.printable
TEXT_MAX_LENGTH = 512


def observation_space(size: int) -> spaces.Dict:
    """``image`` and ``overlay`` SxSx3 uint8, ``mask`` SxS uint8 (0/1), ``text`` printable ASCII."""
    return spaces.Dict(
        {
            "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "overlay": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "mask": spaces.Box(0, 255, (size, size), np.uint8),
            "text": spaces.Text(max_length=TEXT_MAX_LENGTH, min_length=0, charset=TEXT_CHARSET),
        }
    )


def clean_text(text: str) -> str:
    """Printable ASCII, at most TEXT_MAX_LENGTH characters (the Text space's limits)."""
    return "".join(c if c in TEXT_CHARSET else " " for c in text)[:TEXT_MAX_LENGTH]
