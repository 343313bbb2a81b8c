"""A scripted reference agent for the procedural datasets (``shapes`` / ``thin_shapes``).

No learning and no ground truth: it reads the expression back with
:func:`segenv.datasets.shapes.parse_expression`, finds the objects in ``obs["image"]`` with
plain image processing, picks the one the text refers to, and then clicks like the oracle does,
but against *its own* estimate of the object instead of the ground truth:

1. **Colour.** Each pixel of the (lightly blurred) image takes the nearest palette colour of
   :data:`segenv.datasets.shapes.COLORS` if it is saturated enough (chroma) and close enough;
   white needs a high value and low chroma, which keeps the dim grey background out.
2. **Objects.** Connected components per colour (``cv2.connectedComponentsWithStats``) after a
   small opening; specks (blended rims between two objects, noise) are dropped by area and by
   width. For thin structures nearby fragments of one colour are merged (an occluder can cut a
   ring in two).
3. **Shape.** Solid shapes from solidity (area / convex-hull area: star ~0.56, cross ~0.73,
   convex ~1), the hull's circularity ``4 pi A / P^2`` (circle ~1, square ~0.79,
   triangle ~0.60) and the vertex count of ``approxPolyDP`` on the hull; thin shapes from the
   hole count (grid 4+, ring/frame 1), elongation (line) and the hole's roundness (ring vs
   frame). Each component gets a score per shape, not only a label, so that selection can
   prefer "the best triangle" when occlusion makes two guesses close.
4. **Size.** The radius the shape was drawn with, estimated from the minimum enclosing circle
   (divided by the shape's circumradius factor), relative to the image side: small is
   0.07-0.10, large 0.15-0.20 (x1.3 for thin shapes), so the split is at 0.125 (0.16 thin).
5. **Selection.** Filter by colour, then rank by shape and size score; a spatial phrase picks
   between the two best look-alikes (the generator adds one only when there is a twin): ``on
   the left`` -> smaller centroid x, ``at the top`` -> smaller y, ``left of the <ref>`` -> the
   one on that side of the best-matching reference object.
6. **Clicks.** First a positive click at the pixel of the chosen object farthest from its
   boundary (distance-transform maximum). Then, comparing the current mask with the object:
   a negative click deep inside ``mask & ~object`` or a positive one inside ``object & ~mask``,
   whichever error is deeper; :data:`segenv.rollout.STOP` once both errors are thinner than
   ``stop_distance`` pixels.

Everything runs at the observation resolution ``S``; clicks are normalised as ``(col+0.5)/S``.
A text the grammar does not produce (or an image with no candidate) gives ``None``, an invalid
step, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import cv2
import numpy as np
import numpy.typing as npt

from segenv.actions import Click
from segenv.datasets.shapes import COLORS, SIZES, SOLID_SHAPES, THIN_SHAPES, parse_expression
from segenv.rollout import STOP

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
    """One detected object at the observation resolution."""

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
    img = cv2.GaussianBlur(image, (ksize, ksize), 0).astype(np.float32)
    value, low = img.max(-1), img.min(-1)
    chroma = value - low
    # chromatic colours: nearest chromatic palette colour, saturated and close enough
    best = np.zeros(img.shape[:2], np.int8)
    best_d2 = np.full(img.shape[:2], np.inf, np.float32)
    for k in np.flatnonzero(_CHROMATIC):
        d2 = ((img - _PALETTE[k]) ** 2).sum(-1)
        closer = d2 < best_d2
        best[closer] = k
        best_d2[closer] = d2[closer]
    ok = (chroma > 70) & (best_d2 < 90.0**2)
    labels = np.where(ok, best, -1).astype(np.int8)
    white = (chroma < 55) & (low > 195) & (value > 205)
    labels[white & ~ok] = _WHITE
    return labels


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


def thin_shape_scores(mask: npt.NDArray[np.uint8]) -> dict[str, float]:
    """Scores for each thin shape: holes (grid 4+, ring/frame 1), elongation, hole roundness."""
    contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    s = mask.shape[0]
    holes = []
    if hier is not None:
        for c, h in zip(contours, hier[0]):
            if h[3] >= 0 and cv2.contourArea(c) > (0.01 * s) ** 2:
                holes.append(c)
    pts = cv2.findNonZero(mask)
    _, (rw, rh), _ = cv2.minAreaRect(pts)
    elong = max(rw, rh) / max(min(rw, rh), 1.0)
    nh = len(holes)
    scores = {name: 0.05 for name in THIN_SHAPES}
    if nh >= 3:
        scores["grid"] = 1.0
    elif nh >= 1:
        big = max(holes, key=cv2.contourArea)
        ha = float(cv2.contourArea(big))
        hp = max(float(cv2.arcLength(big, True)), 1.0)
        circ = 4 * math.pi * ha / hp**2
        _, (hw, hh), _ = cv2.minAreaRect(big)
        rect_fill = ha / max(hw * hh, 1.0)
        ring = 1.0 / (1.0 + math.exp(-(circ - 0.83) / 0.03)) * (1.0 if rect_fill < 0.9 else 0.5)
        scores["ring"] = 0.1 + 0.8 * ring
        scores["frame"] = 0.1 + 0.8 * (1.0 - ring)
        scores["grid"] = 0.3 if nh == 2 else 0.1
    else:
        line = 1.0 / (1.0 + math.exp(-(elong - 5.0)))
        scores["line"] = 0.1 + 0.8 * line
        scores["zigzag"] = 0.1 + 0.8 * (1.0 - line)
        scores["ring"] = scores["frame"] = 0.1  # an occluder can cut a hollow shape open
    return scores


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
    inner = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd((3 if thin else 11) * u),) * 2)).astype(bool)
    if inner.sum() < min_area / 2:
        return [m]
    px = smooth[inner]
    sample = px[:: max(1, len(px) // 4000)]
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(np.ascontiguousarray(sample), 2, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    if float(np.linalg.norm(centres[0] - centres[1])) < (11.0 if thin else 9.0):
        return [m]
    lab = np.linalg.norm(px[:, None, :] - centres[None], axis=-1).argmin(1)
    halves = []
    for k in range(2):
        h = np.zeros_like(m)
        h[inner] = (lab == k).astype(np.uint8)
        if thin:  # majority vote along the stroke instead of an opening that would erase it
            h = (cv2.medianBlur(h * 255, 5) > 0).astype(np.uint8) & inner
        else:
            h = cv2.morphologyEx(h, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(5 * u),) * 2))
        n, cc, stats, _ = cv2.connectedComponentsWithStats(h, connectivity=8)
        if n < 2:
            return [m]
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[big, cv2.CC_STAT_AREA] < max(min_area / 2, 0.6 * (lab == k).sum()):
            return [m]
        halves.append((cc == big).astype(np.uint8))
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
    smooth: npt.NDArray[np.float32], pieces: list[npt.NDArray[np.uint8]], gap: float
) -> list[npt.NDArray[np.uint8]]:
    """Merge pieces of one colour that share an object's jitter and lie close (an occluder cut them)."""
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
            if np.linalg.norm(cols[i] - cols[j]) >= 6.0:
                continue
            if near is None:  # distance of every pixel to piece i
                near = cv2.distanceTransform(1 - pieces[i], cv2.DIST_L2, 3)
            if float(near[pieces[j].astype(bool)].min()) <= gap:
                parent[root(j)] = root(i)
    groups: dict[int, npt.NDArray[np.uint8]] = {}
    for i, p in enumerate(pieces):
        r = root(i)
        groups[r] = groups[r] | p if r in groups else p.copy()
    return list(groups.values())


def find_objects(image: npt.NDArray[np.uint8], thin: Optional[bool] = None) -> list[Candidate]:
    """Every coloured object in ``image`` (SxSx3 RGB), as :class:`Candidate` records.

    ``thin`` says whether objects are thin structures (True), solid (False) or unknown (None:
    decided per component from its inscribed vs enclosing radius).
    """
    s = image.shape[0]
    u = s / 512
    labels = color_labels(image)
    foreground = cv2.dilate((labels >= 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    smooth_solid = cv2.blur(image, (_odd(7 * u),) * 2).astype(np.float32)
    smooth_thin = cv2.blur(image, (3, 3)).astype(np.float32)
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
            pieces.extend((p, is_thin) for p in _split_by_color(smooth, m, min_area, is_thin))
        if not pieces:
            continue
        merged = _merge_fragments(smooth_thin, [p for p, t in pieces if t], gap=0.25 * s)
        merged = [(p, True) for p in merged]
        merged += [(p, False) for p in _merge_fragments(smooth_solid, [p for p, t in pieces if not t], gap=0.25 * s)]
        for m, is_thin in merged:
            ys, xs = np.nonzero(m)
            if is_thin:
                # bridge the gaps an occluding stroke cut, so that a cut ring keeps its hole
                # (and the pixel dropouts along a blurred stroke)
                wide = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(0.05 * s),) * 2)
                narrow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(0.012 * s),) * 2)
                closed = cv2.morphologyEx(m, cv2.MORPH_CLOSE, narrow)
                closed |= cv2.morphologyEx(m, cv2.MORPH_CLOSE, wide) & foreground
                scores = thin_shape_scores(closed)
            else:
                scores = solid_shape_scores(_fill_holes(m))
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
def _deepest(region: npt.NDArray[np.bool_], exclude: list[tuple[int, int]]) -> tuple[float, int, int]:
    """(distance, row, col) of the region's pixel farthest from its boundary (image edge counts)."""
    if not region.any():
        return 0.0, -1, -1
    dist = cv2.distanceTransform(np.pad(region.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    for r, c in exclude:
        dist[r, c] = 0.0
    flat = int(np.argmax(dist))
    row, col = divmod(flat, dist.shape[1])
    return float(dist[row, col]), row, col


@dataclass
class ScriptedShapesAgent:
    """Reads the procedural expression, finds the object by image processing, clicks on it.

    Args:
        stop_distance: STOP once no error region is deeper than this many pixels, as a
            fraction of the observation side (3 px at S=512 for the default).
        thin: force thin (True) or solid (False) shape analysis; None decides from the text's
            noun (a thin noun -> thin) and otherwise per component.
    """

    stop_distance: float = 3.0 / 512
    thin: Optional[bool] = None
    needs_gt: bool = False
    parts: Optional[dict] = field(default=None, repr=False)
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    region: Optional[npt.NDArray[np.bool_]] = field(default=None, repr=False)
    _clicked: list[tuple[int, int]] = field(default_factory=list, repr=False)

    def reset(self, obs: dict, info: dict) -> None:
        self._clicked = []
        self.parts, self.candidates, self.region = None, [], None
        try:
            self.parts = parse_expression(obs["text"])
        except ValueError:
            return
        thin = self.thin
        shape = self.parts.get("shape")
        if thin is None and shape in THIN_SHAPES:
            thin = True
        elif thin is None and shape in SOLID_SHAPES:
            thin = False
        self.candidates = find_objects(np.asarray(obs["image"]), thin=thin)
        region = target_region(self.parts, self.candidates)
        self.region = None if region is None or not region.any() else region

    def act(self, obs: dict, info: dict) -> Any:
        if self.region is None:
            return None  # unparsable text or nothing found: an invalid step
        s = self.region.shape[0]
        mask = np.asarray(obs["mask"]) > 0
        if mask.shape != self.region.shape:
            mask = cv2.resize(mask.astype(np.uint8), self.region.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
        fn_d, fn_r, fn_c = _deepest(self.region & ~mask, self._clicked)
        fp_d, fp_r, fp_c = _deepest(mask & ~self.region, self._clicked)
        if self._clicked and max(fn_d, fp_d) <= self.stop_distance * s:
            return STOP
        positive = fn_d > fp_d or not self._clicked
        row, col = (fn_r, fn_c) if positive else (fp_r, fp_c)
        if row < 0:
            return STOP
        self._clicked.append((row, col))
        h, w = self.region.shape
        return Click((col + 0.5) / w, (row + 0.5) / h, positive)


__all__ = ["Candidate", "ScriptedShapesAgent", "find_objects", "select_target", "color_labels"]
