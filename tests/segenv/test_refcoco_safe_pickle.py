"""RefCOCO's ``refs(*).p``: loaded as plain data only (a crafted pickle runs no code), Python 2
and string-sentence variants load, malformed refs and annotations are clear ValueErrors."""

from __future__ import annotations

import builtins
import collections
import json
import os
import pickle
import struct
from pathlib import Path

import pytest

import fixtures_real as fx  # noqa: E402  (tests/, on sys.path by pyproject.toml's pytest pythonpath)

from segenv.datasets import make_dataset  # noqa: E402
from segenv.datasets.safe_pickle import RefusedPickleError, bytes_to_text, loads_plain  # noqa: E402

REFS = ("refer_seg", "refcoco", "refs(unc).p")
VAL_SENT_IDS = [(100, 1000), (100, 1001), (101, 1010), (101, 1011)]


@pytest.fixture
def root(tmp_path) -> Path:
    fx.write_refcoco(tmp_path)
    return tmp_path


def refs_path(root: Path) -> Path:
    return root.joinpath(*REFS)


def rewrite_refs(root: Path, edit, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    """``edit(refs)`` changes the fixture's refs in place, or returns an object to write instead."""
    path = refs_path(root)
    refs = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps(edit(refs) or refs, protocol=protocol))


# --- code in the pickle never runs ----------------------------------------------------------


class SystemCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class ExecCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.parametrize("payload", [SystemCall, ExecCall])
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("where", ["top", "in_ref", "in_sentence"])
def test_malicious_pickle_runs_nothing_and_is_refused(root, tmp_path, payload, protocol, where):
    marker = tmp_path / "MARKER"
    evil = payload(marker)

    def edit(refs):
        if where == "top":
            return evil
        if where == "in_ref":
            refs[0]["category_id"] = evil
        else:
            refs[0]["sentences"][0]["sent"] = evil

    rewrite_refs(root, edit, protocol)
    with pytest.raises(ValueError, match=r"refusing to load refs file .*refs\(unc\)\.p: it names the Python object"):
        make_dataset("refcoco", data_root=root)
    assert not marker.exists()


def test_any_class_is_refused_even_harmless_ones(root):
    rewrite_refs(root, lambda refs: [collections.OrderedDict(r) for r in refs])
    with pytest.raises(ValueError, match=r"collections\.OrderedDict"):
        make_dataset("refcoco", data_root=root)


class Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_bytes_stand_ins_accept_only_the_bytes_form():
    import codecs

    # protocol 2 writes bytes as _codecs.encode(<str>, 'latin1') and b"" as bytes()
    data = pickle.dumps([b"", b"caf\xc3\xa9", b"\xff"], protocol=2)
    assert b"_codecs" in data and b"bytes" in data
    assert loads_plain(data) == [b"", b"caf\xc3\xa9", b"\xff"]
    other_codec = pickle.dumps(Reduce(codecs.encode, "abc", "rot13"), protocol=2)
    assert b"_codecs" in other_codec
    with pytest.raises(RefusedPickleError, match="_codecs.encode"):
        loads_plain(other_codec)
    with pytest.raises(RefusedPickleError, match="bytes"):
        loads_plain(pickle.dumps(Reduce(bytes, 10**9), protocol=2))  # bytes(<size>)


# --- what real refs files hold --------------------------------------------------------------


def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle as Python 2's cPickle writes it: ``bytes`` here stand for Python 2
    ``str`` (SHORT_BINSTRING/BINSTRING opcodes), ``str`` for ``unicode`` (BINUNICODE)."""
    out = bytearray(b"\x80\x02")

    def emit(v) -> None:
        if isinstance(v, bool):
            out.extend(b"\x88" if v else b"\x89")
        elif isinstance(v, int):
            out.extend(b"J" + struct.pack("<i", v))
        elif isinstance(v, bytes):
            out.extend((b"U" + bytes([len(v)])) if len(v) < 256 else (b"T" + struct.pack("<i", len(v))))
            out.extend(v)
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            out.extend(b"X" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(v, list):
            out.extend(b"](")
            for x in v:
                emit(x)
            out.extend(b"e")
        elif isinstance(v, dict):
            out.extend(b"}(")
            for k, x in v.items():
                emit(k)
                emit(x)
            out.extend(b"u")
        else:
            raise TypeError(type(v))

    emit(obj)
    return bytes(out + b".")


def _py2_refs(sentence_text) -> list[dict]:
    """The fixture's refs, every key and value a Python 2 ``str`` (bytes); sentences via ``sentence_text``."""
    refs = []
    for ref_id, (ann_id, image_id, split, sents) in fx.REF_SENTENCES.items():
        refs.append({
            b"ref_id": ref_id, b"ann_id": ann_id, b"image_id": image_id, b"split": split.encode(),
            b"sent_ids": [s for s, _ in sents],
            b"sentences": [{b"sent": sentence_text(t), b"sent_id": s, b"tokens": [w.encode() for w in t.split()]}
                           for s, t in sents],
        })  # fmt: skip
    return refs


@pytest.mark.parametrize(
    "encode,expected",
    [
        (lambda t: t.encode("ascii"), lambda t: t),
        (lambda t: ("café " + t).encode("utf-8"), lambda t: "café " + t),
        (lambda t: ("café " + t).encode("latin-1"), lambda t: "café " + t),  # not UTF-8: Latin-1
        (lambda t: "naïve " + t, lambda t: "naïve " + t),  # Python 2 unicode
    ],
    ids=["ascii", "utf8-bytes", "latin1-bytes", "unicode"],
)
def test_python2_refs_load_with_text(root, encode, expected):
    refs_path(root).write_bytes(py2_pickle(_py2_refs(encode)))
    ds = make_dataset("refcoco", data_root=root)
    assert ds.sample_ids == [f"refcoco/val/{r}/{s}" for r, s in VAL_SENT_IDS]
    for i, (ref_id, sent_id) in enumerate(VAL_SENT_IDS):
        assert ds[i].text == expected(dict(fx.REF_SENTENCES[ref_id][3])[sent_id])


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_sentences_holding_bytes_are_decoded(root, protocol):
    def edit(refs):
        for ref in refs:
            for s in ref["sentences"]:
                s["sent"] = ("über " + s["sent"]).encode("utf-8")

    rewrite_refs(root, edit, protocol)
    ds = make_dataset("refcoco", data_root=root)
    assert ds[0].text == "über " + fx.refcoco_text("refcoco", "the left shape")


def test_sentences_as_plain_strings(root):
    def edit(refs):
        for ref in refs:
            ref["sentences"] = [s["sent"] for s in ref["sentences"]]
        del refs[1]["sent_ids"]  # ref 101: ids fall back to positions

    rewrite_refs(root, edit)
    ds = make_dataset("refcoco", data_root=root)
    assert ds.sample_ids == ["refcoco/val/100/1000", "refcoco/val/100/1001", "refcoco/val/101/0", "refcoco/val/101/1"]
    assert [ds[i].text for i in (0, 3)] == [fx.refcoco_text("refcoco", "the left shape"),
                                           fx.refcoco_text("refcoco", "a square")]  # fmt: skip


def test_sent_falls_back_to_raw(root):
    def edit(refs):
        refs[0]["sentences"][0]["sent"] = ""

    rewrite_refs(root, edit)
    assert make_dataset("refcoco", data_root=root)[0].text == "The left shape"


# --- malformed refs and annotations are clear errors ----------------------------------------


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda refs: refs[0]["sentences"].append(7), r"ref 100: sentence 2 is a int"),
        (lambda refs: refs[0]["sentences"][0].update(sent=["tok"], raw=None), r"ref 100: sentence 0 is a dict"),
        (lambda refs: refs[0].update(sentences="the left shape"), r"'sentences' is a str, expected a list"),
        (lambda refs: refs[0].__delitem__("ann_id"), r"ref #0 lacks key 'ann_id'"),
        (lambda refs: refs.insert(1, "not a ref"), r"item 1 is a str, expected a dict"),
        (lambda refs: refs[2].__delitem__("split"), r"ref 2 \(of 4\) lacks 'split'"),
        (lambda refs: {"refs": refs}, r"holds a dict, expected a list"),
    ],
    ids=["int-sentence", "list-text", "sentences-str", "no-ann_id", "ref-not-dict", "no-split", "not-a-list"],
)
def test_malformed_refs_are_value_errors_naming_the_file(root, edit, match):
    rewrite_refs(root, edit)
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p") as err:
        make_dataset("refcoco", data_root=root)
    assert err.match(match)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda coco: coco["annotations"][1].pop("id"), r"annotations\[1\] has no 'id'"),
        (lambda coco: coco["images"][0].pop("id"), r"images\[0\] has no 'id'"),
        (lambda coco: coco["annotations"].append("junk"), r"annotations\[3\] has no 'id' \(a str\)"),
        (lambda coco: coco.update(images={"1": {}}), r"'images' is a dict, expected a list"),
    ],
    ids=["annotation", "image", "not-a-dict", "images-dict"],
)
def test_coco_records_without_id_are_value_errors(root, edit, match):
    path = root / "refer_seg" / "refcoco" / "instances.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"instances\.json") as err:
        make_dataset("refcoco", data_root=root)
    assert err.match(match)


def test_bytes_to_text():
    assert bytes_to_text("é".encode("utf-8")) == "é"
    assert bytes_to_text(b"\xe9t\xe9") == "été"  # Latin-1
