"""The tiny pointer VLM's training data: empty-mask first clicks and oracle GrabCut rollouts, cached as ``.npz``.

Run::

    python -m agents.training.tiny_data --kind first --start 0 --stop 14000 --chunk 2000 --out /tmp/tinycache/first_train.npz

Labels are grid cells: the oracle (``segenv.clicker.next_click``) decides the sign; the cell is
the grid cell whose *centre* lies deepest inside the error region of that sign (so the decoded
click, at the cell centre, always lands in the right region), falling back to the oracle pixel's
cell.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional

import numpy as np

from segenv.clicker import next_click, padded_distance

OBS_SIZE = 224  # the env observation size the tiny model is trained on


# ----------------------------------------------------------------------------- data
def prep_image(overlay: np.ndarray, size: int) -> np.ndarray:
    """The uint8 image the processor feeds the model (PIL bicubic resize, like the processor)."""
    from PIL import Image

    if overlay.shape[0] == size and overlay.shape[1] == size:
        return np.ascontiguousarray(overlay)
    return np.asarray(Image.fromarray(overlay).resize((size, size), Image.BICUBIC))


def label_cell(gt: np.ndarray, pred: np.ndarray, grid: int) -> Optional[tuple[bool, int]]:
    """``(positive, cell)`` for the oracle's next click on a ``grid x grid`` cell grid, or None."""
    click = next_click(gt, pred)
    if click is None:
        return None
    h, w = gt.shape
    region = (gt & ~pred) if click.positive else (~gt & pred)
    dist = padded_distance(region)
    rows = np.minimum(((np.arange(grid) + 0.5) * h / grid).astype(int), h - 1)
    cols = np.minimum(((np.arange(grid) + 0.5) * w / grid).astype(int), w - 1)
    at = dist[rows][:, cols]
    if at.max() > 0:
        cell = int(np.argmax(at))
    else:
        cell = int(min(click.row * grid // h, grid - 1) * grid + min(click.col * grid // w, grid - 1))
    return click.positive, cell


def cell_to_xy(cell: int, grid: int) -> tuple[float, float]:
    r, c = divmod(int(cell), grid)
    return (c + 0.5) / grid, (r + 0.5) / grid


def gen_first_clicks(split: str, start: int, stop: int, grid: int, img_size: int) -> dict:
    """Empty-mask first-click examples for dataset items ``start..stop``."""
    from segenv import render as R
    from segenv.datasets import make_dataset

    ds = make_dataset("shapes", split=split)
    imgs, texts, pos, cells, idx = [], [], [], [], []
    for i in range(start, min(stop, len(ds))):
        s = ds[i]
        obs = R.resize_image(s.image, OBS_SIZE)
        lab = label_cell(s.mask, np.zeros_like(s.mask), grid)
        if lab is None:
            continue
        imgs.append(prep_image(obs, img_size))
        texts.append(s.text)
        pos.append(lab[0])
        cells.append(lab[1])
        idx.append(i)
    return {"images": np.stack(imgs), "texts": np.array(texts), "positive": np.array(pos, bool),
            "cells": np.array(cells, np.int64), "index": np.array(idx, np.int64), "step": np.zeros(len(idx), np.int64)}


def gen_rollouts(split: str, start: int, stop: int, grid: int, img_size: int, max_clicks: int = 5,
                 initial_states=("empty", "empty", "box", "points"), seed: int = 0) -> dict:
    """Oracle GrabCut episodes; keeps steps >= 2 (or any step after a box/points start) that improve IoU."""
    import gymnasium as gym

    import segenv  # noqa: F401  (registers the env)
    from segenv.actions import Click

    envs = {st: gym.make("SegAgent-Shapes-v0", split=split, max_clicks=max_clicks, image_size=OBS_SIZE,
                         initial_state=st).unwrapped for st in set(initial_states)}
    rng = np.random.default_rng(seed + start)
    imgs, texts, pos, cells, idx, steps = [], [], [], [], [], []
    for i in range(start, stop):
        st = initial_states[int(rng.integers(len(initial_states)))]
        env = envs[st]
        obs, info = env.reset(seed=int(seed * 100003 + i), options={"index": i})
        for k in range(max_clicks):
            lab = label_cell(info["gt_mask"], info["pred_mask"], grid)
            if lab is None:
                break
            before = info["iou"]
            x, y = cell_to_xy(lab[1], grid)
            obs2, _, term, trunc, info2 = env.step(Click(x, y, lab[0]))
            if info2["iou"] > before + 1e-6 and (k > 0 or st != "empty"):
                imgs.append(prep_image(obs["overlay"], img_size))
                texts.append(obs["text"])
                pos.append(lab[0])
                cells.append(lab[1])
                idx.append(i)
                steps.append(k)
            obs, info = obs2, info2
            if term or trunc:
                break
    return {"images": np.stack(imgs), "texts": np.array(texts), "positive": np.array(pos, bool),
            "cells": np.array(cells, np.int64), "index": np.array(idx, np.int64), "step": np.array(steps, np.int64)}


def merge(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def make_data_main(argv=None) -> None:
    """``python -m agents.training.train_tiny data --kind first|rollout --start A --stop B --out F``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["first", "rollout"], required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=20000)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t0 = time.time()
    parts = []
    for s in range(a.start, a.stop, a.chunk):
        e = min(s + a.chunk, a.stop)
        if a.kind == "first":
            parts.append(gen_first_clicks(a.split, s, e, a.grid, a.img_size))
        else:
            parts.append(gen_rollouts(a.split, s, e, a.grid, a.img_size))
        d = merge(parts)
        tmp = a.out + ".tmp.npz"
        np.savez(tmp, **d)
        os.replace(tmp, a.out)  # a usable partial file at every chunk
        print(f"[data {a.kind}] {e - a.start}/{a.stop - a.start} items -> {len(d['cells'])} examples "
              f"({time.time() - t0:.0f}s)", flush=True)



if __name__ == "__main__":
    make_data_main()
