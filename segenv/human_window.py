"""The ``render_mode="human"`` window of :class:`segenv.env.SegEnv`: matplotlib is imported only here, and
only when a person asks to watch, so headless training never needs a GUI backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class HumanWindow:
    """One figure that shows successive frames (HxWx3 uint8) at ``fps``."""

    def __init__(self, title: str, fps: float) -> None:
        import matplotlib.pyplot as plt

        plt.ion()
        self._plt = plt
        self._pause = 1.0 / fps
        self._figure = plt.figure(title)
        self._figure.gca().set_axis_off()
        self._image: Any = None

    def show(self, frame: npt.NDArray[np.uint8]) -> None:
        if self._image is None:
            self._image = self._figure.gca().imshow(frame)
        else:
            self._image.set_data(frame)
        self._figure.canvas.draw_idle()
        self._plt.pause(self._pause)

    def close(self) -> None:
        self._plt.close(self._figure)
