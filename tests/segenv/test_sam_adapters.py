"""The SAM family's layout: one adapter per family over segenv.segmenters.sam_common, chosen by a table.

(The backends' behaviour is tested in test_segmenters_sam.py; this file checks the dispatch and
the module map that a new family, e.g. SAM 3's tracker, will follow.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from segenv.segmenters import make_segmenter, tiny  # noqa: E402
from segenv.segmenters.hf_sam import HF_FAMILIES, SUPPORTED_MODEL_TYPES, HFSamSegmenter, adapter_class  # noqa: E402
from segenv.segmenters.hf_sam1 import HFSam1Segmenter, HFSamHQSegmenter  # noqa: E402
from segenv.segmenters.hf_sam2 import HFSam2Segmenter  # noqa: E402
from segenv.segmenters.sam import SamSegmenter  # noqa: E402
from segenv.segmenters.sam_common import SamFamilyBase  # noqa: E402

SEG_DIR = Path(__file__).resolve().parents[2] / "segenv" / "segmenters"
SAM_MODULES = ["sam_common.py", "sam.py", "sam_checkpoint.py", "hf_sam.py", "hf_sam1.py", "hf_sam2.py"]
EXPECTED = {"sam": HFSam1Segmenter, "sam_hq": HFSamHQSegmenter, "sam2": HFSam2Segmenter}


def test_table_rows_resolve_to_their_adapters():
    assert set(HF_FAMILIES) == set(EXPECTED)
    for family, row in HF_FAMILIES.items():
        cls = adapter_class(family)
        assert cls is EXPECTED[family] and cls.family == family and issubclass(cls, HFSamSegmenter)
    assert SUPPORTED_MODEL_TYPES["sam2_video"] == ("sam2", "Sam2Model")
    assert issubclass(SamSegmenter, SamFamilyBase) and issubclass(HFSamSegmenter, SamFamilyBase)


@pytest.mark.parametrize("kind", tiny.HF_KINDS)
def test_hf_dispatch_by_folder_and_by_instance(kind, tmp_path):
    folder = tiny.save_tiny_hf(str(tmp_path / kind), kind, image_size=64)
    by_spec = make_segmenter(f"hf:{folder}", device="cpu")
    by_model = HFSamSegmenter(model=tiny.tiny_hf_model(kind, image_size=64), device="cpu")
    direct = EXPECTED[kind](checkpoint=folder, device="cpu")  # an adapter may be called itself
    for seg in (by_spec, by_model, direct):
        assert type(seg) is EXPECTED[kind] and seg.family == kind and seg.name == "hf"
    other = next(k for k in tiny.HF_KINDS if k != kind)
    with pytest.raises(ValueError, match=f"drives '{other}' models"):
        EXPECTED[other](checkpoint=folder, device="cpu")


def test_sam_module_map():
    """Each SAM-family module is small, says its one job, and only sam_common holds the SAM flow."""
    for name in SAM_MODULES:
        text = (SEG_DIR / name).read_text()
        assert len(text.splitlines()) < 400, name
        doc = ast.get_docstring(ast.parse(text))
        assert doc and len(doc.splitlines()[0]) > 20, name
    for name in SAM_MODULES[1:]:  # no adapter reaches for another module's private helpers
        tree = ast.parse((SEG_DIR / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert not any(a.name.startswith("_") for a in node.names), (name, [a.name for a in node.names])
