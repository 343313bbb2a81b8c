"""Wrong-object masks: the states a reward model must rate low and a random-point mask never shows.

The PRM data of paper E.1 (``tiny_data --kind masks``) draws points inside the ground-truth box, so
every mask it sees overlaps the referent. A policy that misreads the caption clicks *another*
object; the segmenter then returns a clean mask of that object, and a PRM trained only on E.1's
masks rates it like the right one (0.97-0.99 on Shapes, docs/benchmarks.md, tree search): it
judges mask quality, not the referent. These examples show it such masks with their true IoU.

Per item of a Shapes-family dataset (``sample.meta["objects"]``), ``masks_per_item`` times: pick a
distractor (a non-target object), optionally click the target's deepest pixel first
(``both_fraction``: masks holding the referent AND a distractor, mid IoU), then 1..3 positive
clicks on the distractor (its deepest pixel, then random pixels of it) through the env's own
segmenter; keep the final observation labelled like every other kind
(:func:`agents.training.tiny_data.oracle_label`: the oracle's sign and cell, and the true IoU).
Items with one object, or no target, are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from agents.training.tiny_data import TinyDataConfig

MAX_DISTRACTOR_CLICKS = 3


def deepest_pixel(mask: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """``(row, col)`` of the pixel of ``mask`` farthest from its border (first in raster order on ties)."""
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return int(row), int(col)


def _click(mask_shape: tuple[int, int], row: int, col: int) -> Any:
    from segenv.actions import Click

    h, w = mask_shape
    return Click((col + 0.5) / w, (row + 0.5) / h, True)


def wrong_object_states(env: Any, indices: Iterable[int], masks_per_item: int, rng: np.random.Generator,
                        both_fraction: float = 0.3) -> Iterator[tuple[dict, dict, int, int]]:
    """``(observation, info, index, j)`` per wrong-object mask of the items ``indices`` (module docstring).

    ``env`` is a Shapes-family env with ``initial_state="empty"``; its segmenter makes the masks.
    Items with one object, or no target, yield nothing. Everything random comes from ``rng``.
    """
    from segenv.datasets.shapes import object_masks

    base = env.unwrapped
    for i in indices:
        sample = base.dataset[i]
        target = sample.meta.get("target")
        if "objects" not in sample.meta or target is None:
            continue
        masks = object_masks(sample)
        others = [k for k, m in enumerate(masks) if k != target and m.any()]
        if not others:
            continue
        for j in range(masks_per_item):
            distractor = masks[others[int(rng.integers(len(others)))]]
            clicks = []
            if rng.random() < both_fraction:
                clicks.append(deepest_pixel(masks[target]))
            clicks.append(deepest_pixel(distractor))
            inside = np.argwhere(distractor)
            for _ in range(int(rng.integers(0, MAX_DISTRACTOR_CLICKS))):
                clicks.append(tuple(int(v) for v in inside[int(rng.integers(len(inside)))]))
            obs, info = env.reset(seed=int(rng.integers(2**31)), options={"index": i})
            for row, col in clicks:
                obs, _, terminated, truncated, info = env.step(_click(distractor.shape, row, col))
                if terminated or truncated:
                    break
            yield obs, info, i, j


def wrong_object_examples(config: "TinyDataConfig", both_fraction: float = 0.3) -> list[dict]:
    """Masks of distractor objects of items ``start .. stop - 1``, oracle-labelled (module docstring)."""
    from tqdm.auto import tqdm

    from agents.training.tiny_data import _make_env, labelled_observation

    env = _make_env(config, "empty")
    rng = np.random.default_rng(config.seed * 1_000_003 + config.start + 7)
    indices = tqdm(range(config.start, min(config.stop, len(env.unwrapped.dataset))), desc="wrong-object masks",
                   disable=not config.progress)
    rows = [labelled_observation(obs, info, config, i, j, "wrong_object")
            for obs, info, i, j in wrong_object_states(env, indices, config.masks_per_item, rng, both_fraction)]
    env.close()
    return rows


__all__ = ["deepest_pixel", "wrong_object_examples", "wrong_object_states"]
