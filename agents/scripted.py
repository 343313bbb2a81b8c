"""A scripted reference agent for the procedural datasets (``shapes`` / ``thin_shapes``).

No learning and no ground truth: it reads the expression back with
:func:`segenv.datasets.shapes.parse_expression`, finds the objects in ``obs["image"]`` with
plain image processing, picks the one the text refers to, and then clicks like the oracle does,
but against *its own* estimate of the object instead of the ground truth. It is the upper
reference a learned policy on these datasets should approach, and a check that the task is
solvable from what the policy sees.

1. **Colour.** Each pixel of the (lightly blurred) image takes the nearest chromatic palette
   colour of :data:`segenv.datasets.shapes.COLORS` if it is saturated (chroma > 70) and close
   (< 90 in RGB); white needs max > 205, min > 195 and low chroma, which keeps the dim grey
   background (its value stays below ~150-200) out.
2. **Objects.** Connected components per colour (``cv2.connectedComponentsWithStats``) after a
   3x3 opening; specks and blended rims between two objects are dropped by area and depth.
   Every object is its palette colour plus its own jitter (+-15 per channel), which works as
   an identity: a component holding two touching objects of one colour is split by 2-means
   on its interior colours (accepted only if the two halves are spatially coherent), and
   pieces of one object cut apart by an occluder are merged back when their median colours
   agree.
3. **Shape.** Solid shapes score solidity (area / convex-hull area: star ~0.56, cross ~0.73,
   convex ~1), the hull's circularity ``4 pi A / P^2`` (circle ~1, square ~0.79, triangle
   ~0.60), how well the hull fills its minimum-area rectangle / enclosing triangle and the
   ``approxPolyDP`` vertex count; a bite an occluder took is filled with the occluder's pixels
   first when that makes the shape convex. Thin shapes (ring, frame, line, grid, zigzag) are
   fitted as templates of their centre line (circle fit, minimum-area rectangle, its
   midlines, its long axis, a zigzag in it) and scored by recall x precision, with occluding
   objects counting as support. Every candidate keeps a score per shape, not only a label.
4. **Size.** The drawing radius from the minimum enclosing circle (divided by the shape's
   circumradius factor; the area gives a floor), relative to the side: small is 0.07-0.10,
   large 0.15-0.20 (x1.3 for thin shapes).
5. **Selection.** Filter by colour, rank by shape x size score; a spatial phrase picks between
   the two best look-alikes (the generator adds one only when there is a twin): ``on the
   left`` -> smaller centroid x, ``at the top`` -> smaller y, ``left of the <ref>`` -> the one
   on that side of the best-matching reference object.
6. **Clicks.** First a positive click at the object's pixel farthest from its boundary
   (distance-transform maximum). Then it compares the current mask with the object: the
   largest error component (missed or extra pixels, 1-2 px slivers ignored) gets a click at
   its deepest pixel, positive or negative; negative clicks keep a margin from the object
   (GrabCut makes a disk around them sure background, which would cut a thin stroke).
   :data:`segenv.rollout.STOP` when nothing worth a click is left.

Detection runs at a working size of 512 (what the thresholds were tuned on; the env's default
observation size) and the object mask is brought back to the observation size ``S``; clicks
are normalised as ``(col + 0.5) / S``. A text the grammar does not produce, or an image with
no candidate, makes ``act`` return ``None`` (an invalid step), never an exception.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import cv2
import numpy as np
import numpy.typing as npt

from segenv.actions import Click
from segenv.datasets.shapes import COLORS, SIZES, SOLID_SHAPES, THIN_SHAPES, parse_expression
from segenv.rollout import STOP

log = logging.getLogger(__name__)
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
_PALETTE = np.array([COLORS[c] for c in COLOR_NAMES], np.float32)
_CHROMATIC = np.array([c != "white" for c in COLOR_NAMES])
_WHITE = COLOR_NAMES.index("white")

# circumradius of each drawn shape in units of its ``radius`` (star: outer radius 1.15 r;
# cross: bar half-length r, half-width 0.35 r -> corner at sqrt(1 + 0.35^2) r)
_CIRCUM = {"circle": 1.0, "square": 1.0, "triangle": 1.0, "star": 1.15, "cross": math.hypot(1.0, 0.35)}
_SIZE_SPLIT = (SIZES["small"][1] + SIZES["large"][0]) / 2  # 0.125 of the image side
_THIN_SCALE = 1.3  # thin shapes are drawn 1.3x larger


@dataclass
class Candidate:
    """One detected object; ``mask`` is at the resolution of the image given to :func:`find_objects`."""

    mask: npt.NDArray[np.bool_]
    color: str
    area: int
    cx: float  # centroid, normalised to [0, 1]
    cy: float
    radius: float  # estimated drawing radius, as a fraction of the image side
    shape_scores: dict[str, float]
    thin: bool

    @property
    def shape(self) -> str:
        return max(self.shape_scores, key=self.shape_scores.__getitem__)

    @property
    def size(self) -> str:
        split = _SIZE_SPLIT * (_THIN_SCALE if self.thin else 1.0)
        return "large" if self.radius >= split else "small"

    def size_score(self, size: str) -> float:
        """How well the radius fits ``size`` (1 inside its range, decaying outside)."""
        scale = _THIN_SCALE if self.thin else 1.0
        lo, hi = (v * scale for v in SIZES[size])
        if lo <= self.radius <= hi:
            return 1.0
        gap = (lo - self.radius) if self.radius < lo else (self.radius - hi)
        return float(math.exp(-gap / (0.02 * scale)))


# ----------------------------------------------------------------------------- colours
def color_labels(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.int8]:
    """Per pixel: index into :data:`COLOR_NAMES` of its palette colour, or -1 (background)."""
    s = image.shape[0]
    ksize = max(3, int(round(s / 224 * 2)) | 1)
    img = cv2.GaussianBlur(image, (ksize, ksize), 0)
    r, g, b = (np.ascontiguousarray(img[:, :, i], dtype=np.float32) for i in range(3))
    value, low = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    chroma = value - low
    # chromatic colours: nearest chromatic palette colour, saturated and close enough
    best = np.zeros(r.shape, np.int8)
    best_d2 = np.full(r.shape, np.inf, np.float32)
    for k in np.flatnonzero(_CHROMATIC):
        pr, pg, pb = _PALETTE[k]
        d2 = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2
        closer = d2 < best_d2
        best[closer] = k
        best_d2[closer] = d2[closer]
    ok = (chroma > 70) & (best_d2 < 90.0**2)
    labels = np.where(ok, best, -1).astype(np.int8)
    white = (chroma < 55) & (low > 195) & (value > 205)
    labels[white & ~ok] = _WHITE
    return labels


def _solidity(mask: npt.NDArray[np.uint8]) -> float:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull_area = float(cv2.contourArea(cv2.convexHull(np.concatenate(contours))))
    return float(mask.sum()) / max(hull_area, 1.0)


def _fill_holes(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out


# ----------------------------------------------------------------------------- shapes
def solid_shape_scores(mask: npt.NDArray[np.uint8]) -> dict[str, float]:
    """Scores in (0, 1] for each solid shape of a (filled) component mask."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return {s: 1.0 / len(SOLID_SHAPES) for s in SOLID_SHAPES}
    cnt = max(contours, key=cv2.contourArea)
    area = float(mask.sum())
    hull = cv2.convexHull(cnt)
    hull_area = max(float(cv2.contourArea(hull)), 1.0)
    hull_perim = max(float(cv2.arcLength(hull, True)), 1.0)
    solidity = min(1.0, area / hull_area)
    hcirc = 4 * math.pi * hull_area / hull_perim**2
    # how well the hull fills the minimum enclosing triangle / rectangle / circle
    _, (rw, rh), _ = cv2.minAreaRect(hull)
    rect_fill = hull_area / max(rw * rh, 1.0)
    tri_area, _ = cv2.minEnclosingTriangle(hull.astype(np.float32))
    tri_fill = hull_area / max(float(tri_area), 1.0)
    approx = cv2.approxPolyDP(hull, 0.03 * hull_perim, True)
    nv = len(approx)

    def bump(x: float, mu: float, sd: float) -> float:
        return math.exp(-0.5 * ((x - mu) / sd) ** 2)

    convex = bump(solidity, 0.99, 0.06) if solidity < 0.99 else 1.0
    return {
        "star": bump(solidity, 0.56, 0.07),
        "cross": bump(solidity, 0.73, 0.06),
        "circle": convex * bump(hcirc, 0.97, 0.05) * bump(rect_fill, 0.785, 0.08),
        "square": convex * bump(rect_fill, 0.99, 0.06) * bump(hcirc, 0.785, 0.06) * (1.0 if nv == 4 else 0.6),
        "triangle": convex * bump(tri_fill, 0.99, 0.07) * bump(hcirc, 0.605, 0.07) * (1.0 if nv == 3 else 0.6),
    }


def _circle_fit(pts: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through points: centre x, centre y, radius."""
    x, y = pts[:, 0], pts[:, 1]
    a = np.stack([x, y, np.ones_like(x)], 1)
    sol, *_ = np.linalg.lstsq(a, x**2 + y**2, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    return float(cx), float(cy), float(math.sqrt(max(sol[2] + cx**2 + cy**2, 0.0)))


def thin_shape_scores(
    mask: npt.NDArray[np.uint8], foreground: Optional[npt.NDArray[np.uint8]] = None
) -> dict[str, float]:
    """Scores for each thin shape by template fitting.

    Each shape's centre line is fitted (a least-squares circle for the ring; the minimum-area
    rectangle's border for the frame, plus its midlines for the grid; a segment along the
    long axis for the line; a 6-point zigzag in the rectangle for the zigzag) and drawn with
    the stroke's thickness. The score is recall (the stroke's pixels the template covers)
    times precision (the template's pixels that are stroke or an occluding object), so a
    ring cut by another stroke still fits the ring.
    """
    s = mask.shape[0]
    fg = mask if foreground is None else (mask | foreground)
    ys, xs = np.nonzero(mask)
    if len(xs) < 10:
        return {name: 1.0 / len(THIN_SHAPES) for name in THIN_SHAPES}
    pts = np.stack([xs, ys], 1).astype(np.float64)
    depth = float(cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3).max())
    t = max(2.0, 2.0 * depth)  # stroke thickness
    wide = max(3, int(round(t + 0.012 * s)))
    thin_t = max(1, int(round(t)))
    (rcx, rcy), (rw, rh), rang = cv2.minAreaRect(pts.astype(np.float32))
    long_side, short_side = max(rw, rh), min(rw, rh)
    theta = math.radians(rang) if rw >= rh else math.radians(rang + 90.0)
    e1 = np.array([math.cos(theta), math.sin(theta)])
    e2 = np.array([-e1[1], e1[0]])
    c = np.array([rcx, rcy])
    hl, hs = max(long_side - t, 1.0) / 2, max(short_side - t, 0.0) / 2

    def poly(points: list, closed: bool) -> list:
        return [np.round(np.array(points)).astype(np.int32).reshape(-1, 1, 2)], closed

    sq = [c + hl * e1 + hs * e2, c - hl * e1 + hs * e2, c - hl * e1 - hs * e2, c + hl * e1 - hs * e2]
    zig_x = np.linspace(-hl, hl, 6)
    zig_y = np.where(np.arange(6) % 2 == 0, -hs, hs)
    templates: dict[str, list] = {
        "frame": [poly(sq, True)],
        "grid": [poly(sq, True), poly([c + hl * e1, c - hl * e1], False), poly([c + hs * e2, c - hs * e2], False)],
        "line": [poly([c + hl * e1, c - hl * e1], False)],
        "zigzag": [poly([c + x * e1 + y * e2 for x, y in zip(zig_x, zig_y)], False)],
        "zigzag2": [poly([c + x * e1 - y * e2 for x, y in zip(zig_x, zig_y)], False)],
    }
    ccx, ccy, cr = _circle_fit(pts[:: max(1, len(pts) // 3000)])
    scores: dict[str, float] = {}
    n = float(len(xs))
    for name in ("ring", *templates):
        loose = np.zeros_like(mask)
        tight = np.zeros_like(mask)
        if name == "ring":
            if not (0 < cr < s):
                scores[name] = 0.0
                continue
            centre = (int(round(ccx)), int(round(ccy)))
            cv2.circle(loose, centre, int(round(cr)), 1, wide)
            cv2.circle(tight, centre, int(round(cr)), 1, thin_t)
        else:
            for (p, closed) in templates[name]:
                cv2.polylines(loose, p, closed, 1, wide)
                cv2.polylines(tight, p, closed, 1, thin_t)
        recall = float(loose[ys, xs].sum()) / n
        t_area = float(tight.sum())
        precision = float((tight & fg).sum()) / t_area if t_area else 0.0
        scores[name] = recall * precision
    scores["zigzag"] = max(scores["zigzag"], scores.pop("zigzag2"))
    aspect = long_side / max(short_side, 1.0)
    square = math.exp(-0.5 * (math.log(aspect) / 0.15) ** 2)  # frame and grid have sides 1:1
    scores["frame"] *= square
    scores["grid"] *= square
    if hs < 0.2 * hl:  # a flat zigzag is a line
        scores["zigzag"] *= 0.5
    return {name: max(scores[name], 1e-3) for name in THIN_SHAPES}


def _radius(mask: npt.NDArray[np.uint8], shape: str, thin: bool) -> float:
    """Estimated drawing radius as a fraction of the side."""
    s = mask.shape[0]
    pts = cv2.findNonZero(mask)
    _, r = cv2.minEnclosingCircle(pts)
    if thin:  # ring, frame, line, grid: circumradius r; zigzag: half-width r, half-height r/2
        factor = math.sqrt(1.25) if shape == "zigzag" else 1.0
        return float(r) / factor / s
    area = float(mask.sum())
    area_r = {
        "circle": math.sqrt(area / math.pi),
        "square": math.sqrt(area / 2.0),
        "triangle": math.sqrt(area / (3 * math.sqrt(3) / 4)),
        "star": math.sqrt(area / (5 * 0.45 * math.sin(math.radians(36)) * 1.15**2)),
        "cross": math.sqrt(area / 2.31),
    }[shape]
    # the enclosing circle survives occlusion better; the area is a floor for cut-off pieces
    return max(float(r) / _CIRCUM[shape], area_r) / s


# ----------------------------------------------------------------------------- detection
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
                scores = solid_shape_scores(_fill_holes(m))
                # a bite taken by an occluder looks like a concavity: fill it with the
                # occluder's pixels inside the hull and trust that if it is then convex
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                hull = np.zeros_like(m)
                cv2.fillPoly(hull, [cv2.convexHull(np.concatenate(contours))], 1)
                filled = _fill_holes(m | (hull & foreground))
                if filled.sum() > 1.03 * m.sum() and _solidity(filled) > 0.95:
                    scores = solid_shape_scores(filled)
            shape = max(scores, key=scores.__getitem__)
            out.append(
                Candidate(
                    mask=m.astype(bool),
                    color=name,
                    area=int(m.sum()),
                    cx=float((xs.mean() + 0.5) / s),
                    cy=float((ys.mean() + 0.5) / s),
                    radius=_radius(m, shape, is_thin),
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


# ----------------------------------------------------------------------------- selection
def _match_score(c: Candidate, size: Optional[str], shape: Optional[str]) -> float:
    score = 1.0
    if shape is not None and shape != "object":
        score *= c.shape_scores.get(shape, 1e-3)
    if size is not None:
        score *= c.size_score(size)
    return score


def select_target(parts: dict, candidates: list[Candidate]) -> Optional[Candidate]:
    """The candidate the parsed expression refers to (None if nothing fits at all)."""
    if not candidates:
        return None
    shape = parts.get("shape")
    color = parts.get("color")
    pool = [c for c in candidates if color is None or c.color == color]
    if not pool:
        pool = list(candidates)  # colour misread: rank everything by the rest
    if color is not None and shape == "object" and parts.get("size") is None:
        # colour only: the target is the one object of that colour; fragments are one object
        return max(pool, key=lambda c: c.area)
    ranked = sorted(pool, key=lambda c: _match_score(c, parts.get("size"), shape), reverse=True)
    spatial = parts.get("side") or parts.get("end") or parts.get("rel")
    if not spatial or len(ranked) < 2:
        return ranked[0]
    a, b = ranked[0], ranked[1]
    if parts.get("side"):
        left, right = sorted((a, b), key=lambda c: c.cx)
        return left if parts["side"] == "left" else right
    if parts.get("end"):
        top, bottom = sorted((a, b), key=lambda c: c.cy)
        return top if parts["end"] == "top" else bottom
    refs = [c for c in candidates if c is not a and c is not b and c.color == parts.get("ref_color")]
    if not refs:
        refs = [c for c in candidates if c is not a and c is not b]
    if not refs:
        return a
    ref = max(refs, key=lambda c: _match_score(c, None, parts.get("ref_shape")))
    rel = parts["rel"]
    key = {
        "left of": lambda c: ref.cx - c.cx,
        "right of": lambda c: c.cx - ref.cx,
        "above": lambda c: ref.cy - c.cy,
        "below": lambda c: c.cy - ref.cy,
    }[rel]
    return max((a, b), key=key)


def target_region(parts: dict, candidates: list[Candidate]) -> Optional[npt.NDArray[np.bool_]]:
    """The mask to segment at the observation resolution (None if nothing was found)."""
    target = select_target(parts, candidates)
    return None if target is None else target.mask


# ----------------------------------------------------------------------------- the agent
def _distance(region: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Distance of each pixel of ``region`` to its boundary, the image edge counting as one."""
    padded = np.pad(region.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def _argmax(dist: npt.NDArray[np.float32]) -> tuple[float, int, int]:
    flat = int(np.argmax(dist))
    row, col = divmod(flat, dist.shape[1])
    return float(dist[row, col]), row, col


@dataclass
class ScriptedShapesAgent:
    """Reads the procedural expression, finds the object by image processing, clicks on it.

    After the first click (the deepest pixel of the chosen object) it compares the current
    mask with the object: the error regions ``object & ~mask`` (missed) and ``mask & ~object``
    (extra) are cleaned of 1-2 px slivers (resize misalignment) and split into connected
    components; the largest component that is at least ``min_error`` in area and
    ``min_depth`` deep gets the next click, at its deepest pixel (positive for missed,
    negative for extra). A negative click keeps ``negative_margin`` away from the object, since
    the segmenter makes a disk around a negative click sure background and a thin stroke
    next to it would be cut. STOP when no such component is left.

    Args:
        min_error: smallest error component worth a click, as a fraction of the image area.
        min_depth: smallest depth (pixels from its boundary) of such a component, as a
            fraction of the side (2 px at S=512).
        negative_margin: distance a negative click keeps from the object, fraction of the side.
        thin: force thin (True) or solid (False) shape analysis; None decides from the text's
            noun (a thin noun -> thin) and otherwise per component.
    """

    min_error: float = (0.015) ** 2
    min_depth: float = 2.0 / 512
    negative_margin: float = 0.025
    thin: Optional[bool] = None
    needs_gt: bool = False
    parts: Optional[dict] = field(default=None, repr=False)
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    target: Optional[Candidate] = field(default=None, repr=False)
    region: Optional[npt.NDArray[np.bool_]] = field(default=None, repr=False)
    _clicked: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _far: Optional[npt.NDArray[np.bool_]] = field(default=None, repr=False)

    def reset(self, obs: dict, info: dict) -> None:
        self._clicked = []
        self.parts, self.candidates, self.target, self.region, self._far = None, [], None, None, None
        try:
            self.parts = parse_expression(str(obs["text"]))
        except ValueError:
            return
        thin = self.thin
        shape = self.parts.get("shape")
        if thin is None and shape in THIN_SHAPES:
            thin = True
        elif thin is None and shape in SOLID_SHAPES:
            thin = False
        try:
            self.candidates = find_objects(np.asarray(obs["image"]), thin=thin)
        except (cv2.error, ValueError) as exc:  # reset is not guarded by the harness: never crash it
            log.warning("ScriptedShapesAgent: object detection failed (%s); acting invalid", exc)
            return
        self.target = select_target(self.parts, self.candidates)
        if self.target is None or not self.target.mask.any():
            return
        region = self.region = self.target.mask
        s = region.shape[0]
        outside = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
        self._far = outside >= self.negative_margin * s

    def act(self, obs: dict, info: dict) -> Any:
        if self.region is None:
            return None  # unparsable text or nothing found: an invalid step
        region = self.region
        h, w = region.shape
        if not self._clicked:
            _, row, col = _argmax(_distance(region))
            return self._click(row, col, True)
        mask = np.asarray(obs["mask"]) > 0
        if mask.shape != region.shape:
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        k3 = np.ones((3, 3), np.uint8)
        options = []
        for positive, err in ((True, region & ~mask), (False, mask & ~region)):
            err = cv2.morphologyEx(err.astype(np.uint8), cv2.MORPH_OPEN, k3)
            n, lab, stats, _ = cv2.connectedComponentsWithStats(err, connectivity=8)
            for j in range(1, n):
                if stats[j, cv2.CC_STAT_AREA] >= self.min_error * h * w:
                    options.append((int(stats[j, cv2.CC_STAT_AREA]), positive, lab == j))
        options.sort(key=lambda o: o[0], reverse=True)
        for _, positive, comp in options:
            dist = _distance(comp)
            if dist.max() < self.min_depth * h:
                continue
            if not positive:
                assert self._far is not None
                dist[~self._far] = 0.0
            for r, c in self._clicked:
                dist[r, c] = 0.0
            d, row, col = _argmax(dist)
            if d > 0.0:
                return self._click(row, col, positive)
        return STOP

    def _click(self, row: int, col: int, positive: bool) -> Click:
        assert self.region is not None
        self._clicked.append((row, col))
        h, w = self.region.shape
        return Click((col + 0.5) / w, (row + 0.5) / h, positive)


__all__ = ["Candidate", "ScriptedShapesAgent", "color_labels", "find_objects", "select_target", "target_region"]
