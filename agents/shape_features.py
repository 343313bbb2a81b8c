"""Perception of the procedural shapes, per object: its colour, shape and size features.

What :mod:`agents.scripted` reads off one detected object (:mod:`agents.shape_detection` finds
the objects); every score is from plain image processing, no learning.

* **Colour.** Each pixel of the (lightly blurred) image takes the nearest chromatic palette
  colour of :data:`segenv.datasets.shapes.COLORS` if it is saturated (chroma > 70) and close
  (< 90 in RGB); white needs max > 205, min > 195 and low chroma, which keeps the dim grey
  background (its value stays below ~150-200) out.
* **Shape.** Solid shapes score solidity (area / convex-hull area: star ~0.56, cross ~0.73,
  convex ~1), the hull's circularity ``4 pi A / P^2`` (circle ~1, square ~0.79, triangle
  ~0.60), how well the hull fills its minimum-area rectangle / enclosing triangle and the
  ``approxPolyDP`` vertex count; a bite an occluder took is filled with the occluder's pixels
  first when that makes the shape convex. Thin shapes (ring, frame, line, grid, zigzag) are
  fitted as templates of their centre line (circle fit, minimum-area rectangle, its
  midlines, its long axis, a zigzag in it) and scored by recall x precision, with occluding
  objects counting as support. Every candidate keeps a score per shape, not only a label.
* **Size.** The drawing radius from the minimum enclosing circle (divided by the shape's
  circumradius factor; the area gives a floor), relative to the side: small is 0.07-0.10,
  large 0.15-0.20 (x1.3 for thin shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import numpy.typing as npt

from segenv.datasets.shapes import COLORS, SIZES, SOLID_SHAPES, THIN_SHAPES

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


def solidity(mask: npt.NDArray[np.uint8]) -> float:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull_area = float(cv2.contourArea(cv2.convexHull(np.concatenate(contours))))
    return float(mask.sum()) / max(hull_area, 1.0)


def fill_holes(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
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


def estimate_radius(mask: npt.NDArray[np.uint8], shape: str, thin: bool) -> float:
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


__all__ = [
    "COLOR_NAMES", "Candidate", "color_labels", "estimate_radius", "fill_holes", "solid_shape_scores", "solidity",
    "thin_shape_scores",
]
