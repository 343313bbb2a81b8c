"""Perception of the procedural shapes, per image: every coloured object as a :class:`Candidate`.

Connected components per colour (``cv2.connectedComponentsWithStats``) after a
3x3 opening; specks and blended rims between two objects are dropped by area and depth.
Every object is its palette colour plus its own jitter (+-15 per channel), which works as
an identity: a component holding two touching objects of one colour is split by 2-means
on its interior colours (accepted only if the two halves are spatially coherent), and
pieces of one object cut apart by an occluder are merged back when their median colours
agree.

The features of each object (colour, shape scores, size) come from :mod:`agents.shape_features`.
Detection runs at a working size of 512 (what the thresholds were tuned on; the env's default
observation size) and the object masks are brought back to the input resolution.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import numpy.typing as npt

from .shape_features import (
    COLOR_NAMES,
    Candidate,
    color_labels,
    estimate_radius,
    fill_holes,
    solid_shape_scores,
    solidity,
    thin_shape_scores,
)


def _piece_color(smooth: npt.NDArray[np.float32], m: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Median colour of a piece, away from its (blended) boundary where possible."""
    inner = cv2.erode(m, np.ones((5, 5), np.uint8))
    sel = inner if inner.sum() >= 20 else m
    return np.median(smooth[sel.astype(bool)], axis=0)


def _odd(x: float) -> int:
    return max(1, int(round(x)) | 1)


def _split_by_color(
    smooth: npt.NDArray[np.float32], m: npt.NDArray[np.uint8], min_area: float, thin: bool, depth: int = 2
) -> list[npt.NDArray[np.uint8]]:
    """Split a component that holds two touching objects of one palette colour.

    Every object's colour is its palette colour plus its own jitter (up to +-15 per channel),
    so two touching look-alikes differ by ~20 in RGB while one object is flat up to noise.
    A 2-means split is accepted when the centres are far apart and both halves are spatially
    coherent (noise would give salt and pepper).
    """
    if depth == 0 or m.sum() < 2 * min_area:
        return [m]
    u = m.shape[0] / 512
    # cluster only interior pixels: the blur and the resize blend the boundary
    if thin:  # the stroke's core: at least ~2 px from its edge (the resize blends 2 px)
        inner = cv2.distanceTransform(m, cv2.DIST_L2, 3) >= 2.0 * max(u, 0.5)
    else:
        inner = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(11 * u),) * 2)).astype(bool)
    if inner.sum() < min_area / 2:
        return [m]
    px = smooth[inner]
    sample = px[:: max(1, len(px) // 4000)]
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(np.ascontiguousarray(sample), 2, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    if float(np.linalg.norm(centres[0] - centres[1])) < 8.0:
        return [m]
    lab = np.linalg.norm(px[:, None, :] - centres[None], axis=-1).argmin(1)
    # coherence: the share of each core pixel's neighbours (same core) with its own label;
    # one flat object split by noise gives ~0.5, two objects give ~0.9+
    win = (_odd(9 * u),) * 2
    ones = np.zeros(m.shape, np.float32)
    ones[inner] = 1.0
    first_half = np.zeros(m.shape, np.float32)
    first_half[inner] = (lab == 0).astype(np.float32)
    n_all = cv2.boxFilter(ones, -1, win, normalize=False)
    n_first = cv2.boxFilter(first_half, -1, win, normalize=False)
    share = n_first[inner] / np.maximum(n_all[inner], 1.0)
    agree = np.where(lab == 0, share, 1.0 - share)
    if float(agree.mean()) < 0.8:
        return [m]
    halves = []
    for k in range(2):
        h = np.zeros_like(m)
        h[inner] = ((share > 0.5) == (k == 0)).astype(np.uint8)
        if h.sum() < min_area / 4:
            return [m]
        halves.append(h)
    # hand the remaining pixels to the nearest half
    d0 = cv2.distanceTransform(1 - halves[0], cv2.DIST_L2, 3)
    d1 = cv2.distanceTransform(1 - halves[1], cv2.DIST_L2, 3)
    sel = m.astype(bool)
    first = (d0 <= d1) & sel
    out = []
    for part in (first.astype(np.uint8), (~first & sel).astype(np.uint8)):
        out.extend(_split_by_color(smooth, part, min_area, thin, depth - 1))
    return out


def _merge_fragments(
    smooth: npt.NDArray[np.float32],
    pieces: list[npt.NDArray[np.uint8]],
    gap: float,
    max_color: float,
    max_radius: Optional[float] = None,
) -> list[npt.NDArray[np.uint8]]:
    """Merge pieces of one colour that share an object's jitter and lie close (an occluder cut them).

    Pieces merge when their median colours are within ``max_color``, they come within ``gap``
    pixels of each other and (if given) the union fits in a circle of ``max_radius`` pixels.
    """
    if len(pieces) < 2:
        return pieces
    cols = [_piece_color(smooth, p) for p in pieces]
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(pieces)):
        near = None
        for j in range(i + 1, len(pieces)):
            if np.linalg.norm(cols[i] - cols[j]) >= max_color:
                continue
            if near is None:  # distance of every pixel to piece i
                near = cv2.distanceTransform(1 - pieces[i], cv2.DIST_L2, 3)
            if float(near[pieces[j].astype(bool)].min()) > gap:
                continue
            if max_radius is not None:
                _, r = cv2.minEnclosingCircle(cv2.findNonZero(pieces[i] | pieces[j]))
                if r > max_radius:
                    continue
            parent[root(j)] = root(i)
    groups: dict[int, npt.NDArray[np.uint8]] = {}
    for i, p in enumerate(pieces):
        r = root(i)
        groups[r] = groups[r] | p if r in groups else p.copy()
    return list(groups.values())


def find_objects(
    image: npt.NDArray[np.uint8], thin: Optional[bool] = None, work_size: Optional[int] = 512
) -> list[Candidate]:
    """Every coloured object in ``image`` (HxWx3 RGB), as :class:`Candidate` records.

    ``thin`` says whether objects are thin structures (True), solid (False) or unknown (None:
    decided per component from its inscribed vs enclosing radius). The analysis runs on the
    image resized to ``work_size`` (the resolution its thresholds were tuned at; None keeps
    the image as it is); the candidates' masks come back at the input resolution.
    """
    h, w = image.shape[:2]
    if work_size is not None and (h, w) != (work_size, work_size):
        interp = cv2.INTER_AREA if max(h, w) > work_size else cv2.INTER_LINEAR
        found = find_objects(cv2.resize(image, (work_size, work_size), interpolation=interp), thin, None)
        for c in found:
            small = cv2.resize(c.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            c.mask, c.area = small, int(small.sum())
        return [c for c in found if c.area > 0]
    s = image.shape[0]
    u = s / 512
    labels = color_labels(image)
    foreground = cv2.dilate((labels >= 0).astype(np.uint8), np.ones((_odd(5 * u),) * 2, np.uint8))
    smooth_solid = cv2.blur(image, (_odd(7 * u),) * 2).astype(np.float32)
    smooth_thin = cv2.medianBlur(image, 3).astype(np.float32)
    min_area = (0.012 * s) ** 2 * 2.5
    min_depth = (0.003 if thin or thin is None else 0.006) * s
    out: list[Candidate] = []
    k3 = np.ones((3, 3), np.uint8)
    for ci, name in enumerate(COLOR_NAMES):
        cmask = (labels == ci).astype(np.uint8)
        if cmask.sum() < min_area:
            continue
        cmask = cv2.morphologyEx(cmask, cv2.MORPH_OPEN, k3)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(cmask, connectivity=8)
        pieces: list[tuple[npt.NDArray[np.uint8], bool]] = []
        for j in range(1, n):
            if stats[j, cv2.CC_STAT_AREA] < min_area:
                continue
            m = (lab == j).astype(np.uint8)
            depth = float(cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3).max())
            if depth < min_depth:  # a blended rim between two objects, not an object
                continue
            is_thin = _is_thin(m, depth, thin)
            smooth = smooth_thin if is_thin else smooth_solid
            pieces.extend((p, is_thin) for p in _split_by_color(smooth, m, min_area, is_thin) if p.any())
        if not pieces:
            continue
        thin_pieces = _merge_fragments(smooth_thin, [p for p, t in pieces if t], 0.25 * s, max_color=6.0)
        # solid look-alike twins must stay apart: a tighter colour match, and the union must
        # fit the largest drawn shape (a large star's circumradius is 0.23 of the side)
        solid_pieces = _merge_fragments(
            smooth_solid, [p for p, t in pieces if not t], 0.25 * s, max_color=5.0, max_radius=0.24 * s
        )
        merged = [(p, True) for p in thin_pieces] + [(p, False) for p in solid_pieces]
        for m, is_thin in merged:
            ys, xs = np.nonzero(m)
            if is_thin:
                # occluders count as template support: a ring cut by a stroke is still a ring
                scores = thin_shape_scores(m, foreground)
            else:
                scores = solid_shape_scores(fill_holes(m))
                # a bite taken by an occluder looks like a concavity: fill it with the
                # occluder's pixels inside the hull and trust that if it is then convex
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                hull = np.zeros_like(m)
                cv2.fillPoly(hull, [cv2.convexHull(np.concatenate(contours))], 1)
                filled = fill_holes(m | (hull & foreground))
                if filled.sum() > 1.03 * m.sum() and solidity(filled) > 0.95:
                    scores = solid_shape_scores(filled)
            shape = max(scores, key=scores.__getitem__)
            out.append(
                Candidate(
                    mask=m.astype(bool),
                    color=name,
                    area=int(m.sum()),
                    cx=float((xs.mean() + 0.5) / s),
                    cy=float((ys.mean() + 0.5) / s),
                    radius=estimate_radius(m, shape, is_thin),
                    shape_scores=scores,
                    thin=is_thin,
                )
            )
    return out


def _is_thin(m: npt.NDArray[np.uint8], depth: float, thin: Optional[bool]) -> bool:
    if thin is not None:
        return thin
    _, r = cv2.minEnclosingCircle(cv2.findNonZero(m))
    return depth < 0.2 * r  # solid shapes: inscribed/enclosing >= ~0.3 (star), thin ~0.1


__all__ = ["find_objects"]
