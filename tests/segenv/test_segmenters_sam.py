"""SAM-family segmenters: segment-anything ("sam") and transformers ("hf": SAM, SAM-HQ, SAM 2).

Tiny random-weight models (segenv.segmenters.tiny) saved to disk and loaded by path, so loading,
preprocessing (non-square image -> padding), coordinate scaling, mask input feedback and
batched predict_many are all exercised. A cross-check runs the same SAM weights through both
backends; a reference check compares the transformers backend with SamProcessor's own maths.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from segenv.segmenters import Prompt, make_segmenter  # noqa: E402
from segenv.segmenters import tiny  # noqa: E402
from segenv.segmenters.convert import sam_state_dict_to_hf  # noqa: E402
from segenv.segmenters.hf_sam import HFSamSegmenter  # noqa: E402
from segenv.segmenters.sam import SamSegmenter, import_segment_anything  # noqa: E402

H, W = 96, 128  # non-square: exercises the bottom/right padding of SAM's 1024 frame
KINDS = ["sam", "hf-sam", "hf-sam_hq", "hf-sam2", "hf-sam3_tracker"]
SIZE = 256  # saved test models take 256 px input: 16x16 embedding, 64x64 low-res logits (16x cheaper)
LOW = SIZE // 4  # the cross-check and the SamProcessor check below run the real 1024 / 256 shapes


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 40, np.uint8)
    img += rng.integers(0, 30, img.shape, dtype=np.uint8)
    cv2.circle(img, (60, 50), 25, (230, 40, 40), -1)
    cv2.rectangle(img, (90, 10), (120, 40), (40, 200, 60), -1)
    return img


def _pts(*xy):
    return np.array(xy, np.float32).reshape(-1, 2)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return 1.0 if u == 0 else float(np.logical_and(a, b).sum() / u)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("sam_models")
    paths = {"sam": tiny.save_tiny_sam_pth(str(root / "tiny_sam.pth"), image_size=SIZE)}
    for kind in tiny.HF_KINDS:
        paths[f"hf-{kind}"] = tiny.save_tiny_hf(str(root / f"tiny_{kind}"), kind, image_size=SIZE)
    return paths


@pytest.fixture(scope="module")
def loaded(saved):
    """One segmenter per kind, loaded from its saved path, with the test image set once."""
    img = _image()
    out = {}
    for kind in KINDS:
        spec = f"sam:{saved[kind]}" if kind == "sam" else f"hf:{saved[kind]}"
        seg = make_segmenter(spec, device="cpu")
        seg.set_image(img)
        out[kind] = seg
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_predict_protocol(loaded, kind):
    seg = loaded[kind]
    assert seg.name == ("sam" if kind == "sam" else "hf")
    if kind != "sam":
        assert seg.family == kind[3:]
    m1, l1 = seg.predict(_pts([60, 50]), np.array([1]))
    assert m1.shape == (H, W) and m1.dtype == np.bool_
    low = LOW if kind != "hf-sam3_tracker" else 4 * (SIZE // 14)  # SAM 3: 4x its 14-px patch grid
    assert tuple(seg.lowres_size) == (low, low)
    assert isinstance(l1, np.ndarray) and l1.shape == (1, low, low) and l1.dtype == np.float32
    assert len(seg.last_scores) == 1
    # 2 clicks + previous logits (numpy and torch forms are both accepted)
    m2, l2 = seg.predict(_pts([60, 50], [5, 5]), np.array([1, 0]), prev_logits=l1)
    m2t, _ = seg.predict(_pts([60, 50], [5, 5]), np.array([1, 0]), prev_logits=torch.from_numpy(l1[None]))
    assert m2.shape == (H, W) and m2.dtype == np.bool_ and np.array_equal(m2, m2t)
    # box alone, and box + click + previous logits
    m3, l3 = seg.predict(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), box=np.array([30, 20, 90, 80], np.float32))
    m4, _ = seg.predict(_pts([60, 50]), np.array([1]), box=np.array([30, 20, 90, 80], np.float32), prev_logits=l3)
    assert m3.shape == m4.shape == (H, W) and m3.dtype == m4.dtype == np.bool_
    # deterministic
    again, _ = seg.predict(_pts([60, 50]), np.array([1]))
    assert np.array_equal(again, m1)
    # the image encoder ran once for the whole episode
    assert seg.encoder_calls == 1
    with pytest.raises(ValueError, match="prev_logits"):
        seg.predict(_pts([60, 50]), np.array([1]), prev_logits=np.zeros((low + 1, low + 1), np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_predict_many_batched_equals_looped(loaded, kind):
    seg = loaded[kind]
    _, prev = seg.predict(_pts([60, 50]), np.array([1]))
    box = np.array([30, 20, 90, 80], np.float32)
    prompts = [
        Prompt(_pts([60, 50], [5, 5]), np.array([1, 0]), None, prev),
        Prompt(_pts([60, 50]), np.array([1]), None, None),
        Prompt(_pts([62, 48], [100, 20]), np.array([1, 0]), None, prev),
        Prompt(_pts([60, 50]), np.array([1]), box, prev),
    ]
    old = seg.batch_many
    try:
        seg.batch_many = False
        looped = seg.predict_many(prompts)
        looped_scores = list(seg.last_scores)
        calls = seg.decoder_calls
        seg.batch_many = True
        batched = seg.predict_many(prompts)
        assert seg.decoder_calls - calls == 3  # three prompt structures -> three decoder calls
        np.testing.assert_allclose(seg.last_scores, looped_scores, atol=1e-4)
    finally:
        seg.batch_many = old
    single, _ = seg.predict(prompts[2].points, prompts[2].labels, prompts[2].box, prompts[2].prev_logits)
    assert np.array_equal(single, looped[2][0])
    for (ml, ll), (mb, lb) in zip(looped, batched):
        np.testing.assert_allclose(lb, ll, atol=1e-4)
        assert (ml != mb).mean() < 1e-3  # at most float-rounding flips at the 0 threshold
    assert seg.encoder_calls == 1


def test_cross_check_segment_anything_vs_transformers():
    """Same SAM weights in segment-anything and in transformers' SamModel: same masks and scores."""
    from transformers import SamModel

    sam = tiny.tiny_sam(seed=3)
    hf = SamModel(tiny.tiny_hf_sam_config())
    result = hf.load_state_dict(sam_state_dict_to_hf(sam.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    a = SamSegmenter(model=sam, device="cpu")
    b = HFSamSegmenter(model=hf.eval(), device="cpu")
    img = _image(1)
    a.set_image(img)
    b.set_image(img)
    box = np.array([30, 20, 90, 80], np.float32)
    steps = [
        (_pts([60, 50]), np.array([1]), None, True),
        (_pts([60, 50], [110, 30]), np.array([1, 0]), None, True),
        (_pts([60, 50], [110, 30], [40, 70]), np.array([1, 0, 1]), None, True),
        (np.zeros((0, 2), np.float32), np.zeros(0, np.int64), box, False),
        (_pts([60, 50]), np.array([1]), box, True),
    ]
    pa = pb = None
    fractions = []
    for points, labels, bx, use_prev in steps:
        ma, la = a.predict(points, labels, bx, pa if use_prev else None)
        mb, lb = b.predict(points, labels, bx, pb if use_prev else None)
        assert _iou(ma, mb) >= 0.99
        assert abs(a.last_scores[0] - b.last_scores[0]) < 1e-3
        np.testing.assert_allclose(la, lb, atol=1e-3)
        fractions.append(ma.mean())
        pa, pb = la, lb
    assert any(0.02 < f < 0.98 for f in fractions)  # masks are not trivially empty / full


def test_hf_matches_sam_processor_maths():
    """Coordinates, padding and mask post-processing agree with transformers' SamProcessor."""
    from PIL import Image
    from transformers import SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    proc = SamProcessor(image_processor=SamImageProcessorPil())
    seg = HFSamSegmenter(model=tiny.tiny_hf_sam(0), device="cpu")
    img = cv2.GaussianBlur(_image(2), (5, 5), 0)
    seg.set_image(img)
    pts, box = [[60.0, 50.0], [10.0, 10.0]], [30.0, 20.0, 90.0, 80.0]
    enc = proc(images=Image.fromarray(img), input_points=[[pts]], input_labels=[[[1, 0]]], input_boxes=[[box]], return_tensors="pt")
    prep = seg._prepare(np.array(pts, np.float32), np.array([1, 0]), np.array(box, np.float32), None)
    np.testing.assert_allclose(prep.coords.numpy(), enc["input_points"][0, 0].numpy(), atol=1e-4)
    np.testing.assert_allclose(prep.box.numpy(), enc["input_boxes"][0, 0].numpy(), atol=1e-4)
    assert tuple(enc["reshaped_input_sizes"][0].tolist()) == seg._input_size
    mask, logits = seg.predict(np.array(pts, np.float32), np.array([1, 0]), np.array(box, np.float32))
    with torch.inference_mode():
        lowres = torch.from_numpy(logits)[None, None]  # [1, 1, 1, 256, 256]
        ref = proc.post_process_masks(lowres, enc["original_sizes"], enc["reshaped_input_sizes"])[0][0, 0].numpy()
        # full reference pipeline (the processor resizes through PIL bilinear, as this backend does)
        out = seg.model(
            pixel_values=enc["pixel_values"].float(),
            input_points=enc["input_points"].float(),
            input_labels=enc["input_labels"],
            input_boxes=enc["input_boxes"].float(),
        )
        k = int(out.iou_scores[0, 0].argmax())
        ref_full = proc.post_process_masks(out.pred_masks, enc["original_sizes"], enc["reshaped_input_sizes"])[0][0, k].numpy()
    assert (ref != mask).sum() <= 2  # same upsample / crop / resize maths
    assert np.array_equal(ref_full, mask)  # same resize too (it was IoU 0.9997 with cv2's INTER_LINEAR)


def test_multimask_modes_and_small_bf16_model():
    sam = tiny.tiny_sam(0, image_size=256)  # 16x16 embedding -> 64x64 low-res logits
    img = _image()
    segs = {m: SamSegmenter(model=sam, device="cpu", multimask=m) for m in ("always", "first", "never")}
    for s in segs.values():
        s.set_image(img)
    one = {m: s.predict(_pts([60, 50]), np.array([1])) for m, s in segs.items()}
    assert np.array_equal(one["always"][0], one["first"][0])  # "first": multimask on a lone first click
    assert one["always"][1].shape == (1, 64, 64)
    two = {m: s.predict(_pts([60, 50], [5, 5]), np.array([1, 0]), prev_logits=one[m][1]) for m, s in segs.items()}
    ref_single = segs["never"].predict(_pts([60, 50], [5, 5]), np.array([1, 0]), prev_logits=one["first"][1])
    np.testing.assert_allclose(two["first"][1], ref_single[1], atol=1e-5)  # single-mask output afterwards
    with pytest.raises(ValueError, match="multimask"):
        SamSegmenter(model=sam, multimask="sometimes")
    # bfloat16 path (what CUDA uses) on CPU, with a 256 px model
    hf = HFSamSegmenter(model=tiny.tiny_hf_sam(0, image_size=256), device="cpu", dtype="bfloat16")
    hf.set_image(img)
    m, lg = hf.predict(_pts([60, 50]), np.array([1]))
    m, lg = hf.predict(_pts([60, 50], [5, 5]), np.array([1, 0]), box=np.array([30, 20, 90, 80], np.float32), prev_logits=lg)
    assert m.shape == (H, W) and m.dtype == np.bool_ and lg.dtype == np.float32 and lg.shape == (1, 64, 64)


# ------------------------------------------------------------------------------ errors
def test_sam_checkpoint_errors(saved, tmp_path, monkeypatch):
    missing = str(tmp_path / "nope" / "sam_vit_b.pth")
    with pytest.raises(FileNotFoundError) as e:
        make_segmenter(f"sam:{missing}")
    assert missing in str(e.value) and "SEGAGENT_SAM_CHECKPOINT" in str(e.value) and "sam:" in str(e.value)
    monkeypatch.delenv("SEGAGENT_SAM_CHECKPOINT", raising=False)
    with pytest.raises(FileNotFoundError, match="SEGAGENT_SAM_CHECKPOINT"):
        make_segmenter("sam")
    with pytest.raises(ValueError, match=r"hf:"):
        make_segmenter(f"sam:{saved['hf-sam']}")  # a transformers folder given to "sam"
    with pytest.raises(ValueError) as e:
        make_segmenter(f"sam:{saved['sam']}", model_type="vit_b")
    assert "embed dim 128" in str(e.value) and "vit_b" in str(e.value)
    fake = str(tmp_path / "looks_vit_l.pth")
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}, fake)
    with pytest.raises(ValueError) as e:
        make_segmenter(f"sam:{fake}", model_type="vit_b")
    assert "looks like vit_l" in str(e.value) and "'vit_b'" in str(e.value)
    notsam = str(tmp_path / "other.pth")
    torch.save({"weight": torch.zeros(3)}, notsam)
    with pytest.raises(ValueError, match="not a segment-anything state dict"):
        make_segmenter(f"sam:{notsam}")
    # the env var works as the default checkpoint
    monkeypatch.setenv("SEGAGENT_SAM_CHECKPOINT", saved["sam"])
    seg = make_segmenter("sam", device="cpu")
    assert isinstance(seg, SamSegmenter) and seg.encoder_calls == 0


def test_hf_checkpoint_errors(saved, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as e:
        make_segmenter("hf:facebook/sam-vit-base")
    msg = str(e.value)
    assert "hub id" in msg and "local folders" in msg and "facebook/sam-vit-base" in msg
    with pytest.raises(ValueError, match=r"sam:"):
        make_segmenter(f"hf:{saved['sam']}")  # a .pth given to "hf"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        make_segmenter(f"hf:{empty}")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError) as e:
        make_segmenter(f"hf:{other}")
    assert "'bert'" in str(e.value) and "sam2" in str(e.value)
    monkeypatch.delenv("SEGAGENT_HF_SAM_CHECKPOINT", raising=False)
    with pytest.raises(FileNotFoundError, match="SEGAGENT_HF_SAM_CHECKPOINT"):
        make_segmenter("hf")
    monkeypatch.setenv("SEGAGENT_HF_SAM_CHECKPOINT", saved["hf-sam2"])
    seg = make_segmenter("hf", device="cpu")
    assert isinstance(seg, HFSamSegmenter) and seg.family == "sam2"


def test_segment_anything_imports_without_torchvision():
    modeling, build_sam = import_segment_anything()
    assert hasattr(modeling, "Sam") and hasattr(build_sam, "sam_model_registry")
    assert os.path.isdir(modeling.__path__[0])


@pytest.mark.parametrize("kind", KINDS)
def test_env_with_backend_check_env_and_oracle(saved, kind):
    """Each backend drives the env: gymnasium's checker passes, the oracle runs, and the image
    encoder runs exactly once per episode (the decoder once per click)."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import segenv  # noqa: F401
    from agents import OracleAgent
    from segenv.rollout import run_episodes

    spec = f"sam:{saved[kind]}" if kind == "sam" else f"hf:{saved[kind]}"
    env = gym.make("SegAgent-Shapes-v0", segmenter=spec, segmenter_kwargs={"device": "cpu"}, image_size=64, max_clicks=3,
                   dataset_kwargs={"image_size": 96})
    check_env(env.unwrapped)
    seg = env.unwrapped.segmenter
    enc0, dec0 = seg.encoder_calls, seg.decoder_calls
    trajs = run_episodes(OracleAgent(), env, 2, progress=False)
    steps = sum(len(t.steps) for t in trajs)
    assert seg.encoder_calls - enc0 == 2
    assert seg.decoder_calls - dec0 == steps >= 2
    assert all(0.0 <= t.final_iou <= 1.0 for t in trajs)


def test_sam_damaged_checkpoints_say_which_file_and_what_to_do(saved, tmp_path):
    """Issue #17 item 4: random bytes, a pickled module, a missing and a mis-shaped decoder key."""
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError) as e:
        make_segmenter(f"sam:{noise}")
    msg = str(e.value)
    assert str(noise) in msg and "sam_vit_b_01ec64.pth" in msg and "download" in msg and "\n" not in msg
    pickled = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module: needs full unpickling
    with pytest.raises(ValueError) as e:
        make_segmenter(f"sam:{pickled}")
    assert str(pickled) in str(e.value) and "state_dict()" in str(e.value) and "run code" in str(e.value)
    sd = torch.load(saved["sam"], map_location="cpu", weights_only=True)
    key = "mask_decoder.output_upscaling.0.weight"
    no_key = tmp_path / "missing_key.pth"
    torch.save({k: v for k, v in sd.items() if k != key}, no_key)
    with pytest.raises(ValueError) as e:
        make_segmenter(f"sam:{no_key}")
    assert str(no_key) in str(e.value) and f"1 missing keys: {key}" in str(e.value)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save({**sd, key: sd[key][:, :1]}, bad_shape)
    with pytest.raises(ValueError) as e:
        make_segmenter(f"sam:{bad_shape}")
    assert f"1 mis-shaped: {key}" in str(e.value) and "expected" in str(e.value)
