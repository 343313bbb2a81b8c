"""D_traj on disk: the trace folder's layout, its chunk/shard files and the merge (see :mod:`agents.training.traces`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def pack_mask(mask: np.ndarray) -> bytes:
    """An SxS mask (any nonzero = on) as zlib-compressed packed bits (deterministic bytes)."""
    return zlib.compress(np.packbits(np.asarray(mask).astype(bool).ravel()).tobytes(), 6)


def unpack_mask(data: bytes, size: int) -> np.ndarray:
    """Inverse of :func:`pack_mask` for a ``size x size`` mask (bool)."""
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), np.uint8), count=size * size)
    return bits.reshape(size, size).astype(bool)


def _encode_png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _decode_png(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()


def _step_features():
    from datasets import Features, Value

    return Features(
        {
            "sample_index": Value("int64"),
            "sample_id": Value("string"),
            "step": Value("int32"),
            "initial_state": Value("string"),
            "caption": Value("string"),
            "mask": Value("binary"),
            "mask_size": Value("int32"),
            "x": Value("float64"),
            "y": Value("float64"),
            "positive": Value("bool"),
            "iou_before": Value("float64"),
            "iou_after": Value("float64"),
        }
    )


def _image_features():
    from datasets import Features, Value

    return Features({"sample_index": Value("int64"), "image": Value("binary")})


@contextmanager
def _quiet_datasets():
    """No ``datasets`` progress bars for our small saves (restores the previous setting)."""
    from datasets import utils as dtqdm

    was_disabled = dtqdm.are_progress_bars_disabled()
    dtqdm.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            dtqdm.enable_progress_bars()


# ---------------------------------------------------------------------------------- layout
def shard_dir(out: "str | Path", shard: int, num_shards: int) -> Path:
    return Path(out) / "shards" / f"shard-{shard:05d}-of-{num_shards:05d}"



def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)



def _write_chunk(final: Path, rows: list[dict], images: list[dict], indices: list[int]) -> None:
    from datasets import Dataset

    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    steps_features = _step_features()
    cols = {k: [r[k] for r in rows] for k in steps_features}
    Dataset.from_dict(cols, features=steps_features).save_to_disk(str(tmp / "steps"))
    if images is not None:
        img_features = _image_features()
        Dataset.from_dict({k: [r[k] for r in images] for k in img_features}, features=img_features).save_to_disk(
            str(tmp / "images")
        )
    token = uuid.uuid4().hex  # identifies this write, so a merge can tell whether it is current
    (tmp / "chunk.json").write_text(json.dumps({"indices": [int(i) for i in indices], "steps": len(rows), "token": token}))
    os.replace(tmp, final)



def all_shards_done(out: "str | Path") -> bool:
    meta = json.loads((Path(out) / "metadata.json").read_text())
    n = int(meta["num_shards"])
    return all((shard_dir(out, i, n) / "DONE.json").exists() for i in range(n))


def _sources(out: Path, chunk_dirs: list[Path]) -> list[list[str]]:
    return [[str(d.relative_to(out)), json.loads((d / "chunk.json").read_text())["token"]] for d in chunk_dirs]


def merged_is_current(out: "str | Path") -> bool:
    """Whether ``out/merged`` exists and was made from exactly the chunks now on disk."""
    out = Path(out)
    src = out / "merged" / "sources.json"
    if not src.exists():
        return False
    n = int(json.loads((out / "metadata.json").read_text())["num_shards"])
    return json.loads(src.read_text()) == _sources(out, _chunk_dirs(out, n))


def _chunk_dirs(out: Path, n: int) -> list[Path]:
    dirs = []
    for i in range(n):
        sdir = shard_dir(out, i, n)
        dirs += sorted(p for p in sdir.glob("chunk-*") if p.is_dir())
    return dirs


def merge(out: "str | Path") -> Path:
    """Concatenate all shards in (sample_index, step) order into ``out/merged`` (atomically)."""
    from datasets import Dataset, concatenate_datasets, load_from_disk

    out = Path(out)
    meta = json.loads((out / "metadata.json").read_text())
    n = int(meta["num_shards"])
    if not all_shards_done(out):
        missing = [i for i in range(n) if not (shard_dir(out, i, n) / "DONE.json").exists()]
        raise RuntimeError(f"cannot merge {out}: shards {missing} are not finished")
    chunk_dirs = _chunk_dirs(out, n)
    steps = [load_from_disk(str(d / "steps")) for d in chunk_dirs]
    steps_ds = concatenate_datasets(steps) if steps else Dataset.from_dict({}, features=_step_features())
    tmp = out / f".tmp-merged-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    scratch = tmp / "scratch"  # flatten_indices' cache file, kept out of the chunk folders
    scratch.mkdir()
    order = np.lexsort((np.asarray(steps_ds["step"]), np.asarray(steps_ds["sample_index"]))) if len(steps_ds) else []
    steps_ds = steps_ds.select([int(i) for i in order]).flatten_indices(cache_file_name=str(scratch / "steps.arrow"))
    steps_ds.save_to_disk(str(tmp / "steps"))
    if meta.get("store_images", True):
        images = [load_from_disk(str(d / "images")) for d in chunk_dirs]
        img_ds = concatenate_datasets(images) if images else Dataset.from_dict({}, features=_image_features())
        order = np.argsort(np.asarray(img_ds["sample_index"]), kind="stable") if len(img_ds) else []
        img_ds = img_ds.select([int(i) for i in order]).flatten_indices(cache_file_name=str(scratch / "images.arrow"))
        img_ds.save_to_disk(str(tmp / "images"))
        del img_ds
    del steps_ds
    shutil.rmtree(scratch, ignore_errors=True)
    (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    (tmp / "sources.json").write_text(json.dumps(_sources(out, chunk_dirs)))
    final = out / "merged"
    if final.exists():  # a re-merge after a resumed shard: swap the new one in
        trash = out / f".tmp-old-merged-{os.getpid()}"
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        try:
            os.replace(tmp, final)
        except OSError:  # another shard merged at the same moment; its result is the same
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("merged %d chunks into %s", len(chunk_dirs), final)
    return final



def _resolve_merged(path: "str | Path") -> tuple[Path, dict]:
    path = Path(path)
    if (path / "steps").is_dir() and (path / "metadata.json").exists():
        return path, json.loads((path / "metadata.json").read_text())
    if (path / "metadata.json").exists():
        if not merged_is_current(path):
            with _quiet_datasets():
                merge(path)
        return _resolve_merged(path / "merged")
    raise FileNotFoundError(f"{path} is not a trace folder (expected metadata.json and merged/ or steps/)")



__all__ = ["all_shards_done", "merge", "merged_is_current", "pack_mask", "shard_dir", "unpack_mask"]
