"""clicknet: the learned tiny click segmenter (build, save, load, predict, train, errors, env)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segenv.segmenters import Prompt, make_segmenter  # noqa: E402
from segenv.segmenters.clicknet import CheckpointError, ClickNetSegmenter, load_clicknet, save_clicknet  # noqa: E402
from segenv.segmenters.clicknet_model import ClickNet, ClickNetConfig  # noqa: E402

SMALL = ClickNetConfig(work_size=64, encoder_channels=(4, 8, 8, 8, 8), feature_channels=(4, 4, 4, 4), decoder_channels=(4, 4, 4), fine_channels=4)


def small_model(seed: int = 0) -> ClickNet:
    torch.manual_seed(seed)
    model = ClickNet(SMALL)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode is not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def image(h: int = 48, w: int = 80) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_round_trip_save_load_predict(tmp_path):
    model = small_model()
    save_clicknet(model, tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["work_size"] == 64
    a, b = ClickNetSegmenter(model=model), make_segmenter(f"clicknet:{tmp_path / 'ck'}")
    img = image()
    for seg in (a, b):
        seg.set_image(img)
    pts, labels = np.array([[10.5, 20.5], [60.5, 30.5]], np.float32), np.array([1, 0])
    (ma, la), (mb, lb) = a.predict(pts, labels), b.predict(pts, labels)
    assert ma.shape == (48, 80) and ma.dtype == bool and la.shape == (32, 32) and la.dtype == np.float32
    assert np.abs(la - lb).max() < 0.05  # fp16 storage
    assert (ma == mb).mean() > 0.99


def test_prev_logits_and_box_change_the_output():
    seg = ClickNetSegmenter(model=small_model())
    seg.set_image(image())
    pts, labels = np.array([[10.5, 20.5]], np.float32), np.array([1])
    _, first = seg.predict(pts, labels)
    _, again = seg.predict(pts, labels)
    assert np.array_equal(first, again)
    _, with_prev = seg.predict(pts, labels, prev_logits=np.full((32, 32), 5.0, np.float32))
    assert np.abs(with_prev - first).max() > 1e-4
    _, with_box = seg.predict(pts, labels, box=np.array([0, 0, 40, 40], np.float32))
    assert np.abs(with_box - first).max() > 1e-4
    box_only, _ = seg.predict(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), box=np.array([0, 0, 40, 40], np.float32))
    assert box_only.shape == (48, 80)
    with pytest.raises(ValueError, match="prev_logits"):
        seg.predict(pts, labels, prev_logits=np.zeros((10, 10), np.float32))


def test_predict_many_equals_loop_and_counts_calls():
    seg = ClickNetSegmenter(model=small_model())
    seg.set_image(image())
    rng = np.random.default_rng(1)
    prompts = [
        Prompt(rng.uniform(0, 48, (k, 2)).astype(np.float32), rng.integers(0, 2, k), None, rng.normal(0, 2, (32, 32)).astype(np.float32) if k % 2 else None)
        for k in (1, 2, 3, 4)
    ]
    prompts.append(Prompt(np.array([[5.5, 5.5]], np.float32), np.array([1]), np.array([0, 0, 30, 30], np.float32)))
    before = seg.decoder_calls
    many = seg.predict_many(prompts)
    assert seg.decoder_calls == before + 1  # ONE batched forward
    for p, (mask, logits) in zip(prompts, many):
        m1, l1 = seg.predict(p.points, p.labels, p.box, p.prev_logits)
        assert np.allclose(l1, logits, atol=1e-4) and (m1 == mask).mean() > 0.999
    assert seg.encoder_calls == 1


def test_missing_corrupt_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="lacks"):
        load_clicknet(tmp_path / "nothing")
    bad = tmp_path / "bad"
    save_clicknet(small_model(), bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_clicknet(bad)
    other = tmp_path / "other"
    save_clicknet(small_model(), other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["decoder_channels"] = [8, 8, 8]
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        load_clicknet(other)
    (other / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="config"):
        load_clicknet(other)
    with pytest.raises(CheckpointError, match="is a file"):
        load_clicknet(other / "config.json")


def test_a_few_training_steps_lower_the_loss():
    from agents.training.clicknet import ClickNetTrainConfig, train_step

    class Fixed:
        def __init__(self):
            from segenv.datasets.shapes import ShapesDataset

            items = [ShapesDataset("train", image_size=64)[i] for i in range(2)]
            self.images = np.stack([s.image for s in items])
            self.gts = np.stack([s.mask for s in items])

        def batch(self, n):
            return self.images, self.gts

    torch.manual_seed(0)
    model = ClickNet(SMALL)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cfg = ClickNetTrainConfig(batch_size=2, max_iters=1)
    sampler = Fixed()
    losses = [train_step(model, opt, sampler, cfg, np.random.default_rng(0)) for _ in range(25)]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


@pytest.mark.parametrize("env_id", sorted(__import__("segenv").ENV_SPECS))
def test_every_env_id_with_clicknet(env_id, real_data_root):
    """check_env on every registered id with clicknet; encoder once per episode, decoder once per click."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from agents import OracleAgent
    from segenv.rollout import run_episodes

    env = gym.make(env_id, segmenter="clicknet", image_size=64, max_clicks=3, data_root=str(real_data_root))
    check_env(env.unwrapped, skip_render_check=True)
    seg = env.unwrapped.segmenter
    enc0, dec0 = seg.encoder_calls, seg.decoder_calls
    trajs = run_episodes(OracleAgent(), env, 2, progress=False)
    clicks = sum(t.clicks_used for t in trajs)
    assert seg.encoder_calls - enc0 == 2
    assert seg.decoder_calls - dec0 == clicks
    env.close()


def test_shipped_checkpoint_in_the_env():
    """`segmenter="clicknet"` loads the shipped checkpoint with no path; the env passes check_env."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import segenv  # noqa: F401

    for env_id in ("SegAgent-Shapes-v0", "SegAgent-ThinShapes-v0"):
        env = gym.make(env_id, segmenter="clicknet", image_size=64)
        check_env(env.unwrapped, skip_render_check=True)
        env.close()
