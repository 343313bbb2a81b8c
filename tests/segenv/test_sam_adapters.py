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
from segenv.segmenters.hf_sam3 import HFSam3TrackerSegmenter  # noqa: E402
from segenv.segmenters.sam import SamSegmenter  # noqa: E402
from segenv.segmenters.sam_common import SamFamilyBase  # noqa: E402

SEG_DIR = Path(__file__).resolve().parents[2] / "segenv" / "segmenters"
SAM_MODULES = ["sam_common.py", "sam.py", "sam_checkpoint.py", "hf_sam.py", "hf_sam1.py", "hf_sam2.py", "hf_sam3.py"]
EXPECTED = {"sam": HFSam1Segmenter, "sam_hq": HFSamHQSegmenter, "sam2": HFSam2Segmenter,
            "sam3_tracker": HFSam3TrackerSegmenter}


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
    other = next(k for k in ("sam", "sam_hq") if k != kind)  # an unrelated family
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


def test_sam3_tracker_matches_calling_the_model_directly():
    """#23: the adapter's low-res logits equal Sam3TrackerModel called on the same normalised frame
    and prompts (points and a box), and the previous logits are fed back as input_masks."""
    import numpy as np
    import torch

    model = tiny.tiny_hf_sam3_tracker(0, image_size=224)
    seg = HFSam3TrackerSegmenter(model=model, device="cpu")
    img = np.random.default_rng(3).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    seg.set_image(img)
    assert seg.img_size == 224 and seg._mean.flatten().tolist() == [0.5, 0.5, 0.5]
    pts, labels, box = np.array([[60.0, 50.0], [10.0, 12.0]], np.float32), np.array([1, 0]), np.array([30.0, 20.0, 90.0, 80.0], np.float32)
    mask, logits = seg.predict(pts, labels, box)
    from PIL import Image

    frame = np.asarray(Image.fromarray(img).resize((224, 224), Image.Resampling.BILINEAR), np.float32)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None] / 255.0
    x = (x - 0.5) / 0.5
    sx, sy = 224 / 130, 224 / 90
    with torch.inference_mode():
        out = model(pixel_values=x, input_points=torch.tensor([[[[60 * sx, 50 * sy], [10 * sx, 12 * sy]]]]),
                    input_labels=torch.tensor([[[1, 0]]]), input_boxes=torch.tensor([[[30 * sx, 20 * sy, 90 * sx, 80 * sy]]]),
                    multimask_output=True)
    k = int(out.iou_scores[0, 0].argmax())
    assert np.abs(out.pred_masks[0, 0, k].numpy() - logits[0]).max() <= 1e-4
    # the next click: the chosen logits go back as input_masks (a second decoder call, no encoder call)
    calls = seg.encoder_calls
    mask2, _ = seg.predict(pts[:1], labels[:1], None, prev_logits=logits)
    assert seg.encoder_calls == calls and mask2.shape == (90, 130)


def test_sam3_text_model_folder_is_refused_naming_the_tracker(tmp_path):
    import json

    folder = tmp_path / "sam3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "sam3"}))
    with pytest.raises(ValueError, match="sam3_tracker"):
        make_segmenter(f"hf:{folder}")


def test_sam3_tracker_in_the_env_check_env_and_oracle(tmp_path):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from agents import OracleAgent
    from segenv.rollout import run_episode

    folder = tiny.save_tiny_hf(str(tmp_path / "s3"), "sam3_tracker", image_size=112)
    env = gym.make("SegAgent-Shapes-v0", segmenter=f"hf:{folder}", image_size=64, max_clicks=3)
    check_env(env.unwrapped, skip_render_check=True)
    seg = env.unwrapped.segmenter
    before = seg.encoder_calls
    traj = run_episode(OracleAgent(), env, index=0, seed=0)
    clicks = sum(1 for s in traj.steps if s.action is not None and s.action[0] in (0, 1))
    assert seg.encoder_calls - before == 1 and clicks >= 1  # the encoder once per episode
