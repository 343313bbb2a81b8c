"""RefCOCO, RefCOCO+ and RefCOCOg in LISA's ``refer_seg`` layout (annotations from the REFER toolkit).

Layout under the data root (``data_root=`` or ``$SEGAGENT_DATA``)::

    refer_seg/refcoco/refs(unc).p      refer_seg/refcoco/instances.json
    refer_seg/refcoco+/refs(unc).p     refer_seg/refcoco+/instances.json
    refer_seg/refcocog/refs(umd).p     refer_seg/refcocog/instances.json
    refer_seg/images/mscoco/images/train2014/COCO_train2014_{image_id:012d}.jpg

``refs(<split_by>).p`` is the REFER toolkit's pickle: a list of refs ``{ref_id, ann_id, image_id,
split, sentences: [{sent, raw, sent_id, ...}], category_id}``. It is loaded as plain data only
(:mod:`segenv.datasets.safe_pickle`): a file naming any Python object is refused, so it cannot run
code. Python 2 byte strings are decoded (UTF-8, else Latin-1), and ``sentences`` items may also be
plain strings. ``instances.json`` holds the COCO images and annotations (polygons, compressed or
uncompressed RLE); every image and annotation needs an ``id``. ``split_by`` defaults to
``unc`` (refcoco, refcoco+) or ``umd`` (refcocog); ``google`` is accepted where the file exists.

Every sentence of every ref in the chosen split is one :class:`Sample` (as LISA evaluates):
id ``"<dataset>/<split>/<ref_id>/<sent_id>"``, text = the sentence's ``sent``, mask = the
referred annotation decoded with pycocotools, box = the mask's tight box. Splits: refcoco and
refcoco+ ``val``/``testA``/``testB``/``train``; refcocog (umd) ``val``/``test``/``train``.
The index is built at construction; images are read lazily in ``__getitem__``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from .base import Sample, mask_box, register_dataset, require_paths
from .base import data_root as resolve_root
from .hres import check_index
from .image_io import display_path, read_rgb
from .safe_pickle import bytes_to_text, load_plain_pickle

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
SPLIT_BYS = ("unc", "umd", "google")

LAYOUT = """<root>/refer_seg/
  refcoco/refs(unc).p    refcoco/instances.json
  refcoco+/refs(unc).p   refcoco+/instances.json
  refcocog/refs(umd).p   refcocog/instances.json
  images/mscoco/images/train2014/COCO_train2014_{image_id:012d}.jpg"""


def load_refs(path: Path) -> list[dict]:
    """Load a REFER ``refs(*).p`` pickle as plain data, never running code from it.

    Only dicts, lists, tuples, str, bytes, numbers, bool and None load
    (:func:`~segenv.datasets.safe_pickle.load_plain_pickle`); Python 2 byte strings become text.
    A file that names any Python object, is corrupt, or does not hold a list of dicts raises
    ValueError naming it.
    """
    refs = load_plain_pickle(path, "refs file")
    if not isinstance(refs, list):
        raise ValueError(f"refs file {display_path(path)} holds a {type(refs).__name__}, expected a list of refs")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise ValueError(
                f"refs file {display_path(path)}: item {i} is a {type(ref).__name__}, expected a dict (one ref)"
            )
    return refs


def load_instances(path: Path) -> dict:
    """Load a COCO ``instances.json``; ValueError naming the file when it is not valid JSON."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read COCO annotations {path} (corrupt JSON?): {e}") from e
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise ValueError(f"COCO annotations {path} lack 'images'/'annotations'")
    return data


def index_by_id(records: Any, what: str, path: Path) -> dict[Any, dict]:
    """``{record["id"]: record}`` of COCO ``records``; ValueError naming ``path`` when one has no id."""
    if not isinstance(records, list):
        raise ValueError(f"COCO annotations {path}: '{what}' is a {type(records).__name__}, expected a list")
    index: dict[Any, dict] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "id" not in rec:
            got = f"keys {sorted(map(str, rec))[:8]}" if isinstance(rec, dict) else f"a {type(rec).__name__}"
            raise ValueError(f"COCO annotations {path}: {what}[{i}] has no 'id' ({got}); every entry needs one")
        index[rec["id"]] = rec
    return index


def _as_text(value: Any) -> Any:
    """Byte strings (Python 2 pickles) as text; anything else unchanged."""
    return bytes_to_text(value) if isinstance(value, bytes) else value


def ref_sentences(ref: dict, where: str) -> list[tuple[Any, str]]:
    """``[(sent_id, text), ...]`` of a ref.

    ``sentences`` items are REFER dicts (text = ``sent``, else ``raw``; id = ``sent_id``) or plain
    strings; without an id, the matching ``sent_ids`` entry, else the position, is the id. Byte
    strings are decoded (:func:`~segenv.datasets.safe_pickle.bytes_to_text`). ``where`` names the
    ref in errors (ValueError for anything else).
    """
    sentences = ref["sentences"]
    if not isinstance(sentences, (list, tuple)):
        raise ValueError(f"{where}: 'sentences' is a {type(sentences).__name__}, expected a list")
    sent_ids = ref.get("sent_ids")
    if not isinstance(sent_ids, (list, tuple)) or len(sent_ids) != len(sentences):
        sent_ids = list(range(len(sentences)))
    out = []
    for j, sent in enumerate(sentences):
        sent_id = sent_ids[j]
        if isinstance(sent, dict):
            text = _as_text(sent.get("sent")) or _as_text(sent.get("raw")) or ""
            sent_id = sent.get("sent_id", sent_id)
        else:
            text = _as_text(sent)
        if not isinstance(text, str):
            raise ValueError(
                f"{where}: sentence {j} is a {type(sent).__name__} with text of type {type(text).__name__}; "
                "expected a string or a dict with a string 'sent'"
            )
        out.append((sent_id, text))
    return out


def decode_segmentation(seg: Any, height: int, width: int) -> npt.NDArray[np.bool_]:
    """COCO segmentation (polygon list, uncompressed RLE or compressed RLE) -> HxW bool."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        polys = [[float(v) for v in p] for p in seg if len(p) >= 6]  # len 4 would read as a bbox
        if not polys:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(seg, dict):
        h, w = (int(v) for v in seg.get("size", (height, width)))
        counts = seg["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"unknown COCO segmentation format: {type(seg).__name__}")
    return mask_utils.decode(rle).astype(bool)


class RefCOCO:
    """One of refcoco / refcoco+ / refcocog, one split; ``len()`` = number of (ref, sentence) pairs."""

    def __init__(
        self,
        dataset: str = "refcoco",
        split: str = "val",
        data_root: Optional[str | Path] = None,
        split_by: Optional[str] = None,
    ) -> None:
        if dataset not in DEFAULT_SPLIT_BY:
            raise ValueError(f"unknown RefCOCO dataset {dataset!r}; use one of {sorted(DEFAULT_SPLIT_BY)}")
        split_by = split_by or DEFAULT_SPLIT_BY[dataset]
        if split_by not in SPLIT_BYS:
            raise ValueError(f"{dataset}: unknown split_by {split_by!r}; use one of {SPLIT_BYS}")
        self.name = dataset
        self.split_by = split_by
        root = resolve_root(data_root)
        refer = root / "refer_seg"
        self.refs_path = refer / dataset / f"refs({split_by}).p"
        self.instances_path = refer / dataset / "instances.json"
        self.image_dir = refer / "images" / "mscoco" / "images" / "train2014"
        require_paths(
            dataset,
            root,
            {"refs": self.refs_path, "annotations": self.instances_path, "images": self.image_dir},
            LAYOUT,
        )
        refs = load_refs(self.refs_path)
        shown = display_path(self.refs_path)
        missing = [i for i, r in enumerate(refs) if "split" not in r]
        if missing:
            raise ValueError(f"refs file {shown}: ref {missing[0]} (of {len(refs)}) lacks 'split'")
        splits = sorted({str(_as_text(r["split"])) for r in refs})
        by_lower = {s.lower(): s for s in splits}
        if str(split).lower() not in by_lower:
            raise ValueError(f"{dataset} ({split_by}): no split {split!r} in {shown}; splits: {splits}")
        self.split = by_lower[str(split).lower()]

        coco = load_instances(self.instances_path)
        anns = index_by_id(coco["annotations"], "annotations", self.instances_path)
        imgs = index_by_id(coco["images"], "images", self.instances_path)
        # (ref_id, sent_id, text, annotation, image info); only referenced COCO records are kept.
        self._items: list[tuple[int, int, str, dict, dict]] = []
        for i, ref in enumerate(refs):
            if str(_as_text(ref["split"])) != self.split:
                continue
            try:
                ref_id, ann_id = ref["ref_id"], ref["ann_id"]
                sentences = ref_sentences(ref, f"refs file {shown}, ref {ref.get('ref_id', f'#{i}')}")
            except KeyError as e:
                raise ValueError(f"refs file {shown}: ref #{i} lacks key {e}") from e
            if ann_id not in anns:
                raise ValueError(f"{self.instances_path}: no annotation {ann_id} (ref {ref_id})")
            ann = anns[ann_id]
            image_id = ref.get("image_id", ann.get("image_id"))
            if image_id not in imgs:
                raise ValueError(f"{self.instances_path}: no image {image_id} (ref {ref_id})")
            for sent_id, text in sentences:
                self._items.append((ref_id, sent_id, text, ann, imgs[image_id]))

    def __len__(self) -> int:
        return len(self._items)

    @property
    def sample_ids(self) -> list[str]:
        return [f"{self.name}/{self.split}/{ref_id}/{sent_id}" for ref_id, sent_id, *_ in self._items]

    def image_path(self, info: dict) -> Path:
        """Image file of a COCO image record: its ``file_name``, else the train2014 naming."""
        return self.image_dir / (info.get("file_name") or f"COCO_train2014_{int(info['id']):012d}.jpg")

    def __getitem__(self, index: int) -> Sample:
        ref_id, sent_id, text, ann, info = self._items[check_index(index, len(self))]
        path = self.image_path(info)
        image = read_rgb(path)
        h, w = int(info.get("height", image.shape[0])), int(info.get("width", image.shape[1]))
        mask = decode_segmentation(ann.get("segmentation", []), h, w)
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{self.name}: annotation {ann.get('id')} decodes to {mask.shape}, image {path} is {image.shape[:2]}"
            )
        return Sample(
            id=f"{self.name}/{self.split}/{ref_id}/{sent_id}",
            image=image,
            mask=mask,
            text=text,
            box=mask_box(mask),
            meta={
                "ref_id": ref_id,
                "sent_id": sent_id,
                "ann_id": ann.get("id"),
                "image_id": info.get("id"),
                "category_id": ann.get("category_id"),
                "image_path": str(path),
            },
        )

    def __repr__(self) -> str:
        return f"RefCOCO({self.name!r}, split={self.split!r}, split_by={self.split_by!r}, len={len(self)})"


@register_dataset("refcoco")
def make_refcoco(split: str = "val", data_root: Optional[str | Path] = None, split_by: Optional[str] = None, **_):
    return RefCOCO("refcoco", split=split, data_root=data_root, split_by=split_by)


@register_dataset("refcoco+")
def make_refcoco_plus(split: str = "val", data_root: Optional[str | Path] = None, split_by: Optional[str] = None, **_):
    return RefCOCO("refcoco+", split=split, data_root=data_root, split_by=split_by)


@register_dataset("refcocog")
def make_refcocog(split: str = "val", data_root: Optional[str | Path] = None, split_by: Optional[str] = None, **_):
    return RefCOCO("refcocog", split=split, data_root=data_root, split_by=split_by)
