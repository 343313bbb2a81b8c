"""D_traj on disk: ONE Hugging Face dataset in ``out/``, written in resumable shards and chunks.

Layout (``generate_traces(TraceConfig(out=...))``)::

    out/segagent_traces.json                  # {"config": TraceConfig identity, "merged": bool}
    out/shards/shard-00000-of-00002/chunk-00000/   # one chunk's traces (datasets.save_to_disk)
    out/shards/shard-00000-of-00002/DONE.json
    out/dataset_info.json, state.json, data-*.arrow  # the merged traces (datasets.save_to_disk)

A chunk is written into a temporary folder and renamed into place (``os.replace``), so a run
killed at any moment keeps every finished chunk. :func:`merge` (run once every shard is done,
under a file lock so that two ranks finishing together merge once) concatenates the chunks with
``datasets.concatenate_datasets``, sorts them by ``sample_index`` (so any sharding gives the
one-process result) and installs them in ``out/`` itself: ``state.json`` moves in last, so
``datasets.load_from_disk(out)`` sees either the complete dataset or none. Then ``shards/`` is
removed (the merged dataset holds everything; ``segagent_traces.json`` says ``"merged": true``).

One row per trace (sample) whose first click was kept; features (:func:`trace_features`):
``sample_index``, ``sample_id``, ``caption``, ``initial_state``, ``image`` (``datasets.Image``:
the observation-size RGB image, None when made with ``store_images=False``), ``masks`` (a list
of ``datasets.Image``, mode "1": the observation mask BEFORE each kept click) and, per kept
click, ``x``, ``y`` (normalised, in [0, 1)), ``positive``, ``iou_before`` (the ``Current IOU``
target), ``iou_after`` and ``kind``: ``"click"``, or for the last step ``"finish"`` (the mask reached
the target IoU or the oracle had nothing left to fix) / ``"no_object"`` (empty target), whose
``masks`` entry is the mask the end was decided on (x, y are 0). ``dataset.info.description`` holds the TraceConfig identity as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

METADATA = "segagent_traces.json"


def trace_features():
    """The ``datasets.Features`` of a trace row (module docstring)."""
    from datasets import Features, Image, List, Value

    return Features(
        {
            "sample_index": Value("int64"),
            "sample_id": Value("string"),
            "caption": Value("string"),
            "initial_state": Value("string"),
            "image": Image(),
            "masks": List(Image()),
            "x": List(Value("float64")),
            "y": List(Value("float64")),
            "positive": List(Value("bool")),
            "iou_before": List(Value("float64")),
            "iou_after": List(Value("float64")),
            "kind": List(Value("string")),
        }
    )


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars for our small saves (restores the previous setting)."""
    from datasets import utils as dtqdm

    was_disabled = dtqdm.are_progress_bars_disabled()
    dtqdm.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            dtqdm.enable_progress_bars()


def shard_dir(out: "str | Path", shard: int, num_shards: int) -> Path:
    return Path(out) / "shards" / f"shard-{shard:05d}-of-{num_shards:05d}"


def atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_metadata(out: "str | Path") -> dict:
    path = Path(out) / METADATA
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a trace folder (no {METADATA}): make one with `segagent traces --out {out}`")
    return json.loads(path.read_text())


def check_metadata(out: "str | Path", identity: dict) -> dict:
    """Write ``out``'s metadata on first use; refuse a folder made with other settings."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / METADATA).exists():
        atomic_write_json(out / METADATA, {"config": identity, "merged": False})
    meta = read_metadata(out)
    old = meta["config"]
    if old != identity:
        diff = {k: (old.get(k), identity.get(k)) for k in set(old) | set(identity) if old.get(k) != identity.get(k)}
        raise ValueError(f"{out} holds traces made with other settings {diff} (old, new): use another --out")
    return meta


def is_merged(out: "str | Path") -> bool:
    return bool(read_metadata(out).get("merged")) and (Path(out) / "state.json").exists()


def write_chunk(final: Path, rows: list[dict], indices: list[int]) -> None:
    """Save one chunk's trace rows at ``final`` (atomically: temporary folder, then rename)."""
    from datasets import Dataset

    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    features = trace_features()
    Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features).save_to_disk(str(tmp / "traces"))
    (tmp / "chunk.json").write_text(json.dumps({"indices": [int(i) for i in indices], "traces": len(rows)}))
    os.replace(tmp, final)


def all_shards_done(out: "str | Path") -> bool:
    n = int(read_metadata(out)["config"]["num_shards"])
    return all((shard_dir(out, i, n) / "DONE.json").exists() for i in range(n))


def _chunk_dirs(out: Path, n: int) -> list[Path]:
    return [p for i in range(n) for p in sorted(shard_dir(out, i, n).glob("chunk-*")) if p.is_dir()]


def _install(tmp: Path, out: Path) -> None:
    """Move the dataset files saved in ``tmp`` into ``out``; ``state.json`` last."""
    (out / "state.json").unlink(missing_ok=True)  # not a dataset until the new files are all in
    for old in out.glob("data-*.arrow"):
        old.unlink()
    for f in sorted(tmp.iterdir()):
        if f.name != "state.json":
            os.replace(f, out / f.name)
    os.replace(tmp / "state.json", out / "state.json")


def merge(out: "str | Path") -> Path:
    """Concatenate every shard's chunks into the dataset at ``out`` (module docstring); return ``out``."""
    from datasets import Dataset, concatenate_datasets, load_from_disk
    from filelock import FileLock

    out = Path(out)
    with FileLock(str(out / ".merge.lock")), quiet_datasets():
        meta = read_metadata(out)
        if is_merged(out):
            return out
        n = int(meta["config"]["num_shards"])
        missing = [i for i in range(n) if not (shard_dir(out, i, n) / "DONE.json").exists()]
        if missing:
            raise RuntimeError(f"cannot merge {out}: shards {missing} are not finished (run them, then merge)")
        chunks = [load_from_disk(str(d / "traces")) for d in _chunk_dirs(out, n)]
        ds = concatenate_datasets(chunks) if chunks else Dataset.from_dict({}, features=trace_features())
        tmp = out / f".tmp-merged-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if len(ds):  # sorted by sample index, whatever the sharding; flattened outside the chunk folders
            ds = ds.sort("sample_index").flatten_indices(cache_file_name=str(tmp / "sorted.arrow"))
        ds.info.description = json.dumps({"segagent_traces": meta["config"]})
        ds.save_to_disk(str(tmp / "dataset"))
        _install(tmp / "dataset", out)
        del ds, chunks
        atomic_write_json(out / METADATA, {**meta, "merged": True})
        shutil.rmtree(out / "shards", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("merged the traces of %d shards into %s", n, out)
    return out


def load_finished_chunks(out: "str | Path") -> Any:
    """The traces of every chunk finished so far in an UNFINISHED folder, sorted by sample index (a
    run still going or killed: what it has written is usable at once). The dataset records the
    identity like a merged one (``trace_config_of``); it covers only the finished samples."""
    from datasets import Dataset, concatenate_datasets, load_from_disk

    out = Path(out)
    meta = read_metadata(out)
    with quiet_datasets():
        chunks = [load_from_disk(str(d / "traces")) for d in _chunk_dirs(out, int(meta["config"]["num_shards"]))]
        ds = concatenate_datasets(chunks) if chunks else Dataset.from_dict({}, features=trace_features())
        if len(ds):
            ds = ds.sort("sample_index")
    ds.info.description = json.dumps({"segagent_traces": meta["config"]})
    return ds


def trace_config_of(traces: Any) -> dict:
    """The TraceConfig identity a merged traces dataset records in ``info.description``."""
    try:
        return json.loads(traces.info.description)["segagent_traces"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError("this dataset does not record how its traces were made (not made by segagent traces)") from exc


__all__ = [
    "METADATA",
    "all_shards_done",
    "check_metadata",
    "is_merged",
    "load_finished_chunks",
    "merge",
    "read_metadata",
    "shard_dir",
    "trace_config_of",
    "trace_features",
    "write_chunk",
]
