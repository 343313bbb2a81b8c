"""Procedural referring-segmentation data: no download, deterministic, the default everywhere.

Each sample is a ``size x size`` image with 2-4 coloured shapes on a textured, noisy background
and a referring expression that identifies one of them uniquely. The expression is the shortest
unique description from colour, shape and size words ("the triangle", "the red object", "the
small blue circle"); when two objects look alike, a spatial phrase decides ("the red square on
the left", "the small blue ring left of the yellow star"). So a policy must read the text *and*
look at the image: the first click decides almost everything.

``thin_shapes`` draws hollow and thin structures (rings, frames, lines, grids, zigzags) like
DIS5K / ThinObject5K, where a mask needs many refinement clicks.

No-target items (gRefCOCO's "no target" expressions): with ``no_target_fraction=f`` a share
``f`` of the items keep their image but get an expression for an object that is not in it
("the purple star" where no purple star is drawn; shape, colour, colour + shape or size + colour
+ shape, each chosen only when no drawn object fits it), an empty ground-truth mask and the id
suffix ``/no_target``. The right answer is ``NoObject``. The other items are exactly those of
the plain dataset.

Determinism: sample ``i`` of split ``s`` is drawn from ``np.random.default_rng([seed, s, i])``,
so it is the same on every machine and in every process; splits use disjoint streams. Whether
item ``i`` is a no-target item, and its absent object, come from a second stream
``[seed, s, i, 1]``, so they too depend only on ``(seed, split, index)``.
Green is left out of the palette because the policy sees its mask as a green overlay.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from .base import Sample, mask_box, register_dataset

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "blue": (40, 80, 230),
    "yellow": (235, 220, 50),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
}
SOLID_SHAPES = ("circle", "square", "triangle", "star", "cross")
THIN_SHAPES = ("ring", "frame", "line", "grid", "zigzag")
SIZES = {"small": (0.07, 0.10), "large": (0.15, 0.20)}  # radius as a fraction of the image side
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_LENGTHS = {"train": 20000, "val": 500, "test": 500}


@dataclass(frozen=True)
class ShapeSpec:
    """One drawn object: attributes, centre (x, y) in pixels, radius in pixels, rotation."""

    shape: str
    color: str
    size: str
    cx: float
    cy: float
    radius: float
    angle: float
    thickness: int


def _polygon(cx: float, cy: float, radius: float, angle: float, n: int, inner: Optional[float] = None) -> np.ndarray:
    """Vertices of a regular n-gon (or a star when ``inner`` is the inner radius ratio)."""
    pts = []
    steps = 2 * n if inner else n
    for k in range(steps):
        r = radius * (inner if inner and k % 2 else 1.0)
        a = angle + 2 * math.pi * k / steps
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.round(np.array(pts)).astype(np.int32)


def draw_shape(canvas: npt.NDArray[np.uint8], spec: ShapeSpec) -> None:
    """Paint ``spec`` with value 1 into a uint8 HxW canvas (the object's full mask)."""
    cx, cy, r, a, t = spec.cx, spec.cy, spec.radius, spec.angle, spec.thickness
    c = (int(round(cx)), int(round(cy)))
    if spec.shape == "circle":
        cv2.circle(canvas, c, int(r), 1, -1)
    elif spec.shape == "square":
        cv2.fillPoly(canvas, [_polygon(cx, cy, r, a + math.pi / 4, 4)], 1)
    elif spec.shape == "triangle":
        cv2.fillPoly(canvas, [_polygon(cx, cy, r, a - math.pi / 2, 3)], 1)
    elif spec.shape == "star":
        cv2.fillPoly(canvas, [_polygon(cx, cy, r * 1.15, a - math.pi / 2, 5, inner=0.45)], 1)
    elif spec.shape == "cross":
        w = max(2, int(r * 0.35))
        rot = cv2.getRotationMatrix2D((0, 0), math.degrees(a), 1.0)[:, :2]
        for bar in (np.array([[-r, -w], [r, -w], [r, w], [-r, w]]), np.array([[-w, -r], [w, -r], [w, r], [-w, r]])):
            pts = (bar @ rot.T + np.array([cx, cy])).round().astype(np.int32)
            cv2.fillPoly(canvas, [pts], 1)
    elif spec.shape == "ring":
        cv2.circle(canvas, c, int(r), 1, t)
    elif spec.shape == "frame":
        cv2.polylines(canvas, [_polygon(cx, cy, r, a + math.pi / 4, 4)], True, 1, t)
    elif spec.shape == "line":
        dx, dy = r * math.cos(a), r * math.sin(a)
        cv2.line(canvas, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1, t)
    elif spec.shape == "grid":
        h = r / math.sqrt(2)
        for f in (-1.0, 0.0, 1.0):
            cv2.line(canvas, (int(cx - h), int(cy + f * h)), (int(cx + h), int(cy + f * h)), 1, t)
            cv2.line(canvas, (int(cx + f * h), int(cy - h)), (int(cx + f * h), int(cy + h)), 1, t)
    elif spec.shape == "zigzag":
        xs = np.linspace(cx - r, cx + r, 6)
        ys = np.where(np.arange(6) % 2 == 0, cy - r * 0.5, cy + r * 0.5)
        cv2.polylines(canvas, [np.stack([xs, ys], 1).round().astype(np.int32)], False, 1, t)
    else:
        raise ValueError(f"unknown shape {spec.shape!r}")


def owner_map(specs: Sequence[ShapeSpec], size: int) -> tuple[npt.NDArray[np.int16], list[int]]:
    """``(owner, full_areas)``: which object each pixel of a ``size x size`` image shows (int16,
    ``-1`` for background; later objects cover earlier ones) and each object's full drawn area."""
    owner = np.full((size, size), -1, np.int16)
    full_areas = []
    for k, spec in enumerate(specs):
        canvas = np.zeros((size, size), np.uint8)
        draw_shape(canvas, spec)
        full_areas.append(int(canvas.sum()))
        owner[canvas.astype(bool)] = k
    return owner, full_areas


def object_masks(sample: Sample) -> list[npt.NDArray[np.bool_]]:
    """The visible mask of every object of a Shapes ``sample`` (its ``meta["objects"]``, in drawing
    order; ``meta["target"]`` indexes the referent, ``None`` on a no-target item). The other
    objects are the distractors: what a policy clicks when it reads the caption wrong."""
    specs = [ShapeSpec(**o) for o in sample.meta["objects"]]
    owner, _ = owner_map(specs, sample.image.shape[0])
    return [owner == k for k in range(len(specs))]


def _background(rng: np.random.Generator, size: int) -> npt.NDArray[np.float32]:
    """A dim textured background: a colour gradient, soft stripes or blotches, and pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # low saturation (grey plus a faint tint) so that no background reads as an object colour
    base = (rng.uniform(35, 105) + rng.uniform(-12, 12, size=3)).astype(np.float32)
    tilt = (rng.uniform(-35, 35, size=(2, 1)) + rng.uniform(-6, 6, size=(2, 3))).astype(np.float32)
    bg = base + xx[..., None] * tilt[0] + yy[..., None] * tilt[1]
    kind = rng.integers(3)
    if kind == 1:  # stripes
        freq, phase, ang = rng.uniform(4, 14), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        stripes = np.sin(2 * np.pi * freq * (xx * np.cos(ang) + yy * np.sin(ang)) + phase)
        bg += stripes[..., None] * rng.uniform(6, 18)
    elif kind == 2:  # blotches
        blot = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 16)
        bg += (blot / (np.abs(blot).max() + 1e-6))[..., None] * rng.uniform(10, 25)
    bg += rng.normal(0, rng.uniform(3, 10), size=bg.shape).astype(np.float32)
    return bg


def _describe(i: int, specs: Sequence[ShapeSpec], rng: np.random.Generator) -> str:
    """The shortest unique description of object ``i`` among ``specs``, with a spatial fallback."""
    target = specs[i]
    noun = target.shape
    candidates: list[tuple[dict, str]] = [
        ({"shape"}, f"the {noun}"),
        ({"color"}, f"the {target.color} object"),
        ({"color", "shape"}, f"the {target.color} {noun}"),
        ({"size", "shape"}, f"the {target.size} {noun}"),
        ({"size", "color", "shape"}, f"the {target.size} {target.color} {noun}"),
    ]
    for keys, text in candidates:
        clash = [s for j, s in enumerate(specs) if j != i and all(getattr(s, k) == getattr(target, k) for k in keys)]
        if not clash:
            return text
    # Two look-alikes: a spatial phrase decides (generation guarantees at most one twin).
    twin = next(s for j, s in enumerate(specs) if j != i and (s.shape, s.color, s.size) == (noun, target.color, target.size))
    full = f"the {target.size} {target.color} {noun}"
    dx, dy = target.cx - twin.cx, target.cy - twin.cy
    others = [s for j, s in enumerate(specs) if j != i and s is not twin]
    if others and rng.random() < 0.5:
        ref = others[int(rng.integers(len(others)))]
        rx, ry = target.cx - ref.cx, target.cy - ref.cy
        twin_rx, twin_ry = twin.cx - ref.cx, twin.cy - ref.cy
        ref_text = f"the {ref.color} {ref.shape}"
        if abs(rx) >= abs(ry) and np.sign(rx) != np.sign(twin_rx):
            return f"{full} {'right' if rx > 0 else 'left'} of {ref_text}"
        if abs(ry) > abs(rx) and np.sign(ry) != np.sign(twin_ry):
            return f"{full} {'below' if ry > 0 else 'above'} {ref_text}"
    if abs(dx) >= abs(dy):
        return f"{full} on the {'right' if dx > 0 else 'left'}"
    return f"{full} at the {'bottom' if dy > 0 else 'top'}"


def _describe_absent(
    specs: Sequence[ShapeSpec], shapes: Sequence[str], rng: np.random.Generator
) -> tuple[str, dict]:
    """An expression in the dataset's own grammar that fits none of ``specs``, and its attributes.

    Draws one of the four forms (shape / colour / colour + shape / size + colour + shape), then
    attributes uniformly among those that no drawn object matches on every named attribute.
    """
    forms = [("shape",), ("color",), ("color", "shape"), ("size", "color", "shape")]
    values = {"shape": list(shapes), "color": list(COLORS), "size": list(SIZES)}
    for start in rng.permutation(len(forms)):  # a form with no free combination is skipped
        keys = forms[int(start)]
        combos = [{}]
        for key in keys:
            combos = [{**c, key: v} for c in combos for v in values[key]]
        free = [c for c in combos if not any(all(getattr(s, k) == v for k, v in c.items()) for s in specs)]
        if free:
            attrs = free[int(rng.integers(len(free)))]
            if keys == ("color",):
                return f"the {attrs['color']} object", attrs
            words = [attrs[k] for k in ("size", "color", "shape") if k in attrs]
            return "the " + " ".join(words), attrs
    raise RuntimeError("every description fits a drawn object")  # pragma: no cover (at most 6 objects)


EXPRESSION = re.compile(
    r"^the (?:(?P<size>small|large) )?(?:(?P<color>[a-z]+) )?(?P<shape>[a-z]+)"
    r"(?: (?:on the (?P<side>left|right)|at the (?P<end>top|bottom)"
    r"|(?P<rel>left of|right of|above|below) the (?P<ref_color>[a-z]+) (?P<ref_shape>[a-z]+)))?$"
)


def parse_expression(text: str) -> dict:
    """Read back a procedural expression into its parts (``shape`` is ``"object"`` if colour-only).

    Returns keys ``size, color, shape, side, end, rel, ref_color, ref_shape`` (None when absent).
    Raises ``ValueError`` for text this grammar did not produce.
    """
    m = EXPRESSION.match(text.strip().lower())
    if not m:
        raise ValueError(f"not a procedural shapes expression: {text!r}")
    parts = m.groupdict()
    if parts["color"] is not None and parts["color"] not in COLORS:  # "the small circle" parses size only
        raise ValueError(f"unknown colour {parts['color']!r} in {text!r}")
    return parts


@dataclass
class ShapesDataset:
    """Procedural referring segmentation (see the module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        image_size: side of the square image in pixels (the sample's original resolution).
        num_objects: inclusive range of objects per image.
        thin: draw thin/hollow structures instead of solid shapes.
        length: number of samples (defaults per split: 20000 / 500 / 500).
        seed: base seed; the same ``(seed, split, index)`` always gives the same sample.
        no_target_fraction: share in [0, 1] of items whose expression names an absent object
            (empty mask); 0 (the default) gives the plain dataset.
    """

    split: str = "train"
    image_size: int = 224
    num_objects: tuple[int, int] = (2, 4)
    thin: bool = False
    length: Optional[int] = None
    seed: int = 0
    no_target_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {self.split!r}")
        lo, hi = self.num_objects
        if not 1 <= lo <= hi <= 6:
            raise ValueError(f"num_objects must satisfy 1 <= lo <= hi <= 6, got {self.num_objects}")
        if self.image_size < 64:
            raise ValueError(f"image_size must be >= 64, got {self.image_size}")
        fraction = self.no_target_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"no_target_fraction must be a number in [0, 1], got {fraction!r}")
        if self.length is None:
            self.length = DEFAULT_LENGTHS[self.split]
        self.name = "thin_shapes" if self.thin else "shapes"

    @property
    def no_target_items(self) -> bool:
        """Whether empty targets are part of the task here (benchmarks keep them: NoObject is the answer)."""
        return self.no_target_fraction > 0

    def __len__(self) -> int:
        return int(self.length)

    def __getitem__(self, index: int) -> Sample:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}/{self.split} has {len(self)} samples, got index {index}")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        for _ in range(100):
            sample = self._try_sample(rng, index)
            if sample is not None:
                break
        else:  # pragma: no cover
            raise RuntimeError(f"could not place objects for {self.name}/{self.split}/{index}")
        if self.no_target_fraction > 0:
            no_target_rng = np.random.default_rng([self.seed, SPLITS[self.split], index, 1])
            if no_target_rng.random() < self.no_target_fraction:
                return self._without_target(sample, no_target_rng)
        return sample

    def _without_target(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """``sample``'s image with an expression for an object it does not show, and an empty mask."""
        specs = [ShapeSpec(**o) for o in sample.meta["objects"]]
        text, absent = _describe_absent(specs, THIN_SHAPES if self.thin else SOLID_SHAPES, rng)
        mask = np.zeros_like(sample.mask)
        meta = {**sample.meta, "target": None, "no_target": True, "absent": absent}
        return Sample(f"{sample.id}/no_target", sample.image, mask, text, mask_box(mask), meta=meta)

    def _random_specs(self, rng: np.random.Generator) -> list[ShapeSpec]:
        n = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
        shapes = THIN_SHAPES if self.thin else SOLID_SHAPES
        specs: list[ShapeSpec] = []
        s = self.image_size
        while len(specs) < n:
            size = "small" if rng.random() < 0.5 else "large"
            radius = rng.uniform(*SIZES[size]) * s
            if self.thin:
                radius *= 1.3
            spec = ShapeSpec(
                shape=str(rng.choice(shapes)),
                color=str(rng.choice(list(COLORS))),
                size=size,
                cx=float(rng.uniform(radius + 2, s - radius - 2)),
                cy=float(rng.uniform(radius + 2, s - radius - 2)),
                radius=float(radius),
                angle=float(rng.uniform(0, 2 * np.pi)),
                thickness=int(rng.integers(2, 5)) if self.thin else 0,
            )
            twins = sum((o.shape, o.color, o.size) == (spec.shape, spec.color, spec.size) for o in specs)
            if twins < 1:
                specs.append(spec)
        return specs

    def _try_sample(self, rng: np.random.Generator, index: int) -> Optional[Sample]:
        s = self.image_size
        specs = self._random_specs(rng)
        owner, full_areas = owner_map(specs, s)
        # every object must stay mostly visible, or its expression would be unfair
        for k, area in enumerate(full_areas):
            if area == 0 or (owner == k).sum() < 0.7 * area:
                return None
        image = _background(rng, s)
        for k, spec in enumerate(specs):
            region = owner == k
            jitter = rng.uniform(-15, 15, size=3)
            shade = rng.normal(0, 6, size=(int(region.sum()), 3))
            image[region] = np.asarray(COLORS[spec.color], np.float32) + jitter + shade
        image = np.clip(image, 0, 255).astype(np.uint8)
        target = int(rng.integers(len(specs)))
        mask = owner == target
        text = _describe(target, specs, rng)
        return Sample(
            id=f"{self.name}/{self.split}/{index}",
            image=image,
            mask=mask,
            text=text,
            box=mask_box(mask),
            meta={"objects": [spec.__dict__ for spec in specs], "target": target},
        )


@register_dataset("shapes")
def _shapes(split: str = "train", data_root=None, **kwargs) -> ShapesDataset:
    return ShapesDataset(split=split, **kwargs)


@register_dataset("thin_shapes")
def _thin_shapes(split: str = "train", data_root=None, **kwargs) -> ShapesDataset:
    return ShapesDataset(split=split, thin=True, **kwargs)
