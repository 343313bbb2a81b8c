"""Real-data loaders on odd file names and corrupt files: skipped and recorded or a clear error
naming the file, never a crash.

A file name that is not valid UTF-8 used to kill the process (SIGSEGV inside ``cv2.imread``), so
every test that reads such a name runs in a subprocess: a regression fails the test instead of
ending the test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

import fixtures_real as fx  # noqa: E402  (tests/, on sys.path by pyproject.toml's pytest pythonpath)

from segenv.datasets import make_dataset  # noqa: E402
from segenv.datasets.image_io import _jpeg_truncated, display_path, read_rgb  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FOLDER_LOADERS = ["berkeley", "davis", "dis5k", "thinobject5k", "grabcut"]


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last. Fails on any crash."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, env=env, timeout=120
    )
    died = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    assert proc.returncode == 0, f"child process failed ({died}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _write_all(root: Path) -> None:
    fx.write_hres(root)
    fx.write_classic(root)


# --- file names that are not valid UTF-8 ----------------------------------------------------


@pytest.mark.parametrize("name", FOLDER_LOADERS)
def test_odd_name_is_skipped_recorded_and_warned(tmp_path, name):
    """Construction reads no pixels, so this is safe in-process; reading is tested below."""
    _write_all(tmp_path)
    clean_ids = make_dataset(name, data_root=tmp_path).sample_ids
    fx.write_odd_named_pair(tmp_path, name)
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\).*not valid UTF-8"):
        ds = make_dataset(name, data_root=tmp_path)
    assert ds.sample_ids == clean_ids and len(ds) == len(clean_ids)
    image_dir, mask_dir = fx.PAIRED_DIRS[name]
    assert [(Path(s.path).parent, s.reason) for s in ds.skipped] == [
        (tmp_path / image_dir, "image: file name is not valid UTF-8"),
        (tmp_path / mask_dir, "mask: file name is not valid UTF-8"),
    ]
    assert all(Path(s.path).name.startswith("\\xff\\xfe.") for s in ds.skipped)  # printable escapes
    for s in ds.skipped:
        s.path.encode("utf-8")  # the record itself can be logged or written to JSON


def test_no_warning_and_nothing_skipped_on_clean_data(real_data_root, recwarn):
    for name in FOLDER_LOADERS:
        assert make_dataset(name, data_root=real_data_root).skipped == []
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


CHILD_ITERATE = """
    import json, sys, warnings
    import fixtures_real as fx
    from segenv.datasets import make_dataset
    name, root = sys.argv[1], sys.argv[2]
    fx.write_hres(root); fx.write_classic(root); fx.write_odd_named_pair(root, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = make_dataset(name, data_root=root)
    ids = [ds[i].id for i in range(len(ds))]
    print(json.dumps({"ids": ids, "skipped": [s.reason for s in ds.skipped]}))
"""


@pytest.mark.parametrize("name", FOLDER_LOADERS)
def test_odd_name_never_crashes_reading_every_item(tmp_path, name):
    out = run_child(CHILD_ITERATE, name, str(tmp_path))
    assert len(out["ids"]) == 2 and all(i.startswith(f"{name}/") for i in out["ids"])
    assert out["skipped"] == ["image: file name is not valid UTF-8", "mask: file name is not valid UTF-8"]


CHILD_READ_ODD_PATHS = """
    import json, os, sys
    import cv2, numpy as np
    from segenv.datasets.image_io import read_rgb
    folder = sys.argv[1]
    img = np.full((6, 5, 3), (10, 20, 30), np.uint8)  # BGR
    raw = os.path.join(os.fsencode(folder), b"\\xff\\xfe.png")
    with open(raw, "wb") as f:
        f.write(cv2.imencode(".png", img)[1].tobytes())
    ok = read_rgb(os.fsdecode(raw))  # a str with surrogate escapes: read by bytes, no crash
    errors = []
    for name in ("\\ud800.jpg", "\\udcff-missing.jpg"):  # a lone surrogate; an escaped byte, no file
        try:
            read_rgb(os.path.join(folder, name))
        except ValueError as e:
            errors.append(str(e))
    print(json.dumps({"shape": list(ok.shape), "pixel": ok[0, 0].tolist(), "errors": errors}))
"""


def test_read_rgb_with_odd_paths_reads_or_errors(tmp_path):
    out = run_child(CHILD_READ_ODD_PATHS, str(tmp_path))
    assert out["shape"] == [6, 5, 3] and out["pixel"] == [30, 20, 10]  # RGB
    assert len(out["errors"]) == 2
    assert "\\ud800.jpg" in out["errors"][0]
    assert "\\xff-missing.jpg: file not found" in out["errors"][1]


CHILD_REFCOCO_FILE_NAME = """
    import json, sys
    from pathlib import Path
    import fixtures_real as fx
    from segenv.datasets import make_dataset
    root = Path(sys.argv[1]); fx.write_refcoco(root)
    path = root / "refer_seg" / "refcoco" / "instances.json"
    coco = json.loads(path.read_text())
    coco["images"][0]["file_name"] = "\\ud800.jpg"  # JSON can hold a lone surrogate
    path.write_text(json.dumps(coco))
    ds = make_dataset("refcoco", data_root=root)
    try:
        ds[0]
        print(json.dumps({"error": None}))
    except ValueError as e:
        print(json.dumps({"error": str(e)}))
"""


def test_refcoco_odd_file_name_in_annotations_is_a_clear_error(tmp_path):
    out = run_child(CHILD_REFCOCO_FILE_NAME, str(tmp_path))
    assert out["error"] is not None and "cannot read image" in out["error"] and "\\ud800" in out["error"]


def test_display_path_is_always_printable():
    assert display_path(os.fsdecode(b"/d/\xff\xfe.jpg")) == "/d/\\xff\\xfe.jpg"
    assert display_path("/d/\ud800.jpg") == "/d/\\ud800.jpg"
    assert display_path(b"/d/caf\xc3\xa9") == "/d/café"


# --- corrupt image files --------------------------------------------------------------------

CORRUPT_CASES = [  # loader, file (relative to the root), what the message says
    ("refcoco", "refer_seg/images/mscoco/images/train2014/COCO_train2014_000000000001.jpg", "image"),
    ("thinobject5k", "thin_object_detection/ThinObject5K/images_test/Sailboat-3.jpg", "image"),
    ("dis5k", "DIS5K/DIS-VD/gt/1#Accessories#1#Bag#2339506821_83cf9f1d22_o.png", "mask"),
    ("davis", "DAVIS/img/bear_00000.jpg", "image"),
    ("davis", "DAVIS/gt/bear_00000.png", "mask"),
    ("berkeley", "Berkeley/masks/12003.png", "mask"),
    ("grabcut", "GrabCut/data_GT/banana1.bmp", "image"),
    ("sbd", "SBD/dataset/img/2008_000002.jpg", "image"),
]


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.02, 0.0])
@pytest.mark.parametrize("name,rel,what", CORRUPT_CASES)
def test_truncated_or_empty_file_is_a_clear_error_naming_it(tmp_path, name, rel, what, keep):
    fx.write_refcoco(tmp_path)
    _write_all(tmp_path)
    path = tmp_path / rel
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    ds = make_dataset(name, data_root=tmp_path)
    with pytest.raises(ValueError, match=rf"cannot read {what} .*{Path(rel).name}") as err:
        ds[0]
    if keep == 0.0:
        assert "empty" in str(err.value)


def test_missing_file_after_indexing_is_a_clear_error(tmp_path):
    _write_all(tmp_path)
    ds = make_dataset("davis", data_root=tmp_path)
    (tmp_path / "DAVIS" / "img" / "camel_00010.jpg").unlink()
    with pytest.raises(ValueError, match=r"camel_00010\.jpg: file not found"):
        ds[1]


def _smooth(h: int = 120, w: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx, yy, xx + yy], -1).astype(np.uint8)


@pytest.mark.parametrize(
    "params", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]], ids=str
)
def test_jpeg_truncation_check_accepts_valid_files_and_catches_cut_ones(tmp_path, params):
    data = cv2.imencode(".jpg", _smooth(), params)[1].tobytes()
    assert not _jpeg_truncated(data)
    assert not _jpeg_truncated(data + b"\x00\x00trailing bytes")  # some cameras append data
    # a header segment (APP1, as an EXIF block) holding a complete small JPEG: its end marker
    # must not count as the end of the main image
    thumb = cv2.imencode(".jpg", _smooth(8, 8))[1].tobytes()
    with_thumb = data[:2] + b"\xff\xe1" + (len(thumb) + 2).to_bytes(2, "big") + thumb + data[2:]
    assert not _jpeg_truncated(with_thumb)
    for cut in (len(data) - 2, len(data) // 2, 30):
        assert _jpeg_truncated(data[:cut])
        assert _jpeg_truncated(with_thumb[: cut + len(thumb) + 4])
    path = tmp_path / "ok.jpg"
    path.write_bytes(with_thumb)
    assert read_rgb(path).shape == (120, 160, 3)
    path.write_bytes(with_thumb[:-2])
    with pytest.raises(ValueError, match=r"ok\.jpg: truncated JPEG"):
        read_rgb(path)


def test_sbd_list_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    fx.write_classic(tmp_path)
    (tmp_path / "SBD" / "dataset" / "val.txt").write_bytes(b"2008_000002\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"val\.txt is not UTF-8"):
        make_dataset("sbd", data_root=tmp_path)
