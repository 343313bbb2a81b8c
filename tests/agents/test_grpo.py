"""GRPO of the MLLM policy (agents/training/grpo.py): rewards against hand-computed values, exact
state restoration, and one real GRPO step on the shipped tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.mllm.prompt import ActionFormat
from agents.training.grpo_states import (
    PromptState,
    StateRestorer,
    completion_text,
    format_reward,
    gather_states,
    iou_gain,
    iou_line_reward,
)
from segenv.actions import STOP, Click
from segenv.datasets.base import Sample

FMT = ActionFormat("loc", loc_grid=14, iou_line=True)
TINY = Path(__file__).resolve().parents[2] / "agents" / "mllm" / "checkpoints" / "tiny"


# ------------------------------------------------------------------ a hand-computable world
class SquareSegmenter:
    """Deterministic: the union of 5x5 squares centred on positive clicks, minus those of negative ones."""

    def __init__(self) -> None:
        self.calls = 0

    def set_image(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]

    def predict(self, points, labels, box=None, prev_logits=None):
        self.calls += 1
        mask = np.zeros(self.shape, bool)
        for (x, y), label in zip(np.asarray(points, int), labels):
            mask[max(0, y - 2):y + 3, max(0, x - 2):x + 3] = bool(label)
        return mask, None


class SquareData:
    """One 28x28 item: the ground truth is the 12x12 square rows/cols 8..19 (144 pixels). On the
    14x14 click grid, ``<loc_k>`` (row r = k // 14, col c = k % 14) lands on pixel (2r + 1, 2c + 1)."""

    name, split = "square", "test"

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Sample:
        mask = np.zeros((28, 28), bool)
        mask[8:20, 8:20] = True
        return Sample("square/0", np.full((28, 28, 3), 128, np.uint8), mask, "the square", (8, 8, 20, 20))


def square_restorer() -> StateRestorer:
    return StateRestorer(obs_size=28, env_kwargs={"dataset": SquareData(), "segmenter": SquareSegmenter()})


# ------------------------------------------------------------------ rewards
def test_format_reward_good_and_bad_text():
    good = ["Current IOU: 74\nPositive point: <loc_105>", "Current IOU: 98\nFinish", "Current IOU: 0\nNegative point: <loc_0>"]
    bad = ["Positive point: <loc_105>",  # no IoU line
           "Current IOU: 74",  # no action
           "Current IOU: 74\nPositive point: <loc_999>",  # off the 14x14 grid
           "hello"]
    assert format_reward(good + bad, FMT) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    # without an IoU line in the format, a bare action is well formed
    assert format_reward(["Positive point: <loc_105>"], ActionFormat("loc", loc_grid=14)) == [1.0]


def test_iou_line_reward_hand_values():
    texts = ["Current IOU: 74\nFinish", "Current IOU: 74\nFinish", "Current IOU: 50\nFinish", "Finish"]
    got = iou_line_reward(texts, [0.70, 0.74, 0.90, 0.5], FMT, tolerance=0.1)
    assert got == pytest.approx([1 - 0.04 / 0.1, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        iou_line_reward(texts, [0.5] * 4, FMT, tolerance=0.0)


def test_iou_gain_hand_computed():
    restorer = square_restorer()
    empty = PromptState(0, 0, "empty", (), 0.0)
    # <loc_105> = cell (7, 7) -> pixel (15, 15): a 5x5 square inside the 144-pixel target
    assert iou_gain(restorer, empty, "Current IOU: 0\nPositive point: <loc_105>", FMT) == pytest.approx(25 / 144)
    centre = (7.5 / 14, 7.5 / 14, True)
    one = PromptState(0, 0, "empty", (centre,), 25 / 144)
    # <loc_75> = cell (5, 5) -> pixel (11, 11): rows/cols 9..13, one pixel shared with the first square
    assert iou_gain(restorer, one, "Current IOU: 17\nPositive point: <loc_75>", FMT) == pytest.approx(24 / 144)
    # a negative click at pixel (15, 15) removes the whole first square
    assert iou_gain(restorer, one, "Current IOU: 17\nNegative point: <loc_105>", FMT) == pytest.approx(-25 / 144)
    assert iou_gain(restorer, one, "Current IOU: 17\nFinish", FMT) == 0.0  # Finish changes nothing
    assert iou_gain(restorer, one, "Current IOU: 17\nNo Object Found", FMT) == pytest.approx(-25 / 144)
    assert iou_gain(restorer, one, "garbage", FMT) == 0.0  # unparsable: the env keeps its mask
    # an invalid step in the history replays as one: the mask stays, the click budget is spent
    _, info = restorer.restore(PromptState(0, 0, "empty", (centre, None), 25 / 144))
    assert info["iou"] == pytest.approx(25 / 144) and info["num_clicks"] == 2


def test_reward_object_takes_trl_columns_and_memoises():
    from agents.training.grpo import GRPORewards

    restorer = square_restorer()
    rewards = GRPORewards(FMT, restorer, iou_tolerance=0.1)
    row = PromptState(0, 0, "empty", ((7.5 / 14, 7.5 / 14, True),), 25 / 144).to_row()
    completions = [[{"role": "assistant", "content": "Current IOU: 17\nPositive point: <loc_75>"}]] * 3 + ["Current IOU: 20\nFinish"]
    columns = {k: [v] * 4 for k, v in row.items()}
    seg = restorer.env("empty").unwrapped.segmenter
    calls = seg.calls
    assert rewards.iou_gain(None, completions, **columns) == pytest.approx([24 / 144] * 3 + [0.0])
    assert seg.calls - calls == 2  # the replayed click + the new one, once: the repeats come from the memo
    assert rewards.format(None, completions, **columns) == [1.0] * 4
    assert rewards.iou_line(None, completions, **columns) == pytest.approx([1 - abs(0.17 - 25 / 144) / 0.1] * 3 + [1 - abs(0.20 - 25 / 144) / 0.1])
    assert completion_text(completions[0]) == "Current IOU: 17\nPositive point: <loc_75>"


# ------------------------------------------------------------------ exact restoration
class ScriptedClicks:
    """Clicks a fixed list (None = an unusable answer), records each mask it sees, then Finish."""

    needs_gt = False

    def __init__(self, clicks) -> None:
        self.clicks, self.seen = list(clicks), []

    def reset(self, obs, info) -> None:
        self.k = 0

    def act(self, obs, info):
        self.seen.append(np.asarray(obs["mask"]).copy())
        self.k += 1
        return self.clicks[self.k - 1] if self.k <= len(self.clicks) else STOP


def test_row_roundtrip_and_restore_replays_the_gathered_mask():
    state = PromptState(3, 7, "points", ((0.25, 0.5, True), None, (0.75, 0.1, False)), 0.5)
    assert PromptState.from_row(state.to_row()) == state

    restorer = StateRestorer(obs_size=64, max_clicks=5)  # Shapes train, clicknet: the real prompts' world
    policy = ScriptedClicks([Click(0.5, 0.5, True), None, Click(0.3, 0.6, False), Click(0.62, 0.41, True)])
    gathered = gather_states(policy, restorer, items=[17000, 17001], initial_states=["points", "empty"], seed=4)
    assert len(gathered) == 4 * 5 and len(policy.seen) == len(gathered)  # 4 episodes x (4 actions + Finish)
    assert {len(s.history) for s, _, _ in gathered} == {0, 1, 2, 3, 4}
    assert sum(s.history.count(None) for s, _, _ in gathered) == 4 * 3  # the invalid step is kept in later states
    fresh = StateRestorer(obs_size=64, max_clicks=5)  # another env: nothing carried over
    for (state, overlay, _), mask in zip(gathered, policy.seen):
        obs, info = fresh.restore(state)
        assert np.array_equal(obs["mask"], mask) and np.array_equal(obs["overlay"], overlay)
        assert info["iou"] == state.iou
    assert len({s.iou for s, _, _ in gathered}) > 4  # the states differ (the check above is not vacuous)


def test_prompt_images_at_the_model_input_size_are_what_its_processor_sees():
    """Overlays are stored at 112 px (PNG encoding at 512 px costs ~0.5 s each): the tiny model's
    processor resizes with the same PIL bicubic, so its pixel values must be identical."""
    from PIL import Image
    from transformers import AutoProcessor

    import agents  # noqa: F401  (registers the tiny model's processor)
    from agents.training.grpo import model_input_size
    from agents.training.tiny_data import prep_image

    processor = AutoProcessor.from_pretrained(TINY)
    side = model_input_size(processor)
    assert side == 112
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    full = processor.image_processor(images=[Image.fromarray(image)], return_tensors="pt")["pixel_values"]
    small = processor.image_processor(images=[Image.fromarray(prep_image(image, side))], return_tensors="pt")["pixel_values"]
    assert full.shape[-1] == side and bool((full == small).all())


# ------------------------------------------------------------------ one real GRPO step
def test_one_grpo_step_on_the_tiny_model_changes_weights_and_saves(tmp_path):
    import torch

    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig, load_model_and_processor
    from agents.training.grpo import GRPORunConfig, train_grpo

    model, processor = load_model_and_processor(TINY, device="cpu", dtype="float32")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    config = GRPORunConfig(init=str(TINY), out=str(tmp_path / "grpo"), states=4, obs_size=64, max_steps=1,
                           num_generations=4, batch_size=8, logging_steps=1, lr=1e-3, threads=0,
                           grpo_kwargs={"warmup_steps": 0})
    history = train_grpo(config, model=model, processor=processor)
    assert history["steps"] == 1 and history["states"] == 4
    logged = history["log"][0]
    assert {"rewards/iou_gain/mean", "rewards/format/mean", "rewards/iou_line/mean"} <= set(logged)
    assert logged["rewards/format/mean"] > 0.5  # the SFT model already answers in the grammar
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the step moved weights
    assert any(k.startswith(("query", "key")) for k in changed)  # the pointer readout is trained (full logits)

    loaded, proc = load_model_and_processor(tmp_path / "grpo", device="cpu", dtype="float32")
    for k, v in loaded.state_dict().items():
        assert torch.allclose(v, model.state_dict()[k])
    assert (tmp_path / "grpo" / "states").is_dir() and (tmp_path / "grpo" / "grpo_history.json").is_file()
    policy = MLLMPolicy(MLLMPolicyConfig(model_path=str(tmp_path / "grpo"), max_new_tokens=6), model=loaded, processor=proc)
    obs = {"overlay": np.zeros((64, 64, 3), np.uint8), "text": "the red circle"}
    assert policy.generate(obs)[0].ok  # the saved checkpoint acts
