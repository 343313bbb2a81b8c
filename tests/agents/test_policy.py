"""agents.mllm.policy: any local image-text-to-text checkpoint as a segenv agent.

Tiny stock LLaVA and Idefics3 checkpoints are built from configs here (random weights), so their
answers are gibberish: ``act`` then returns None (an invalid step) with the text kept.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402

import segenv  # noqa: E402,F401
from agents.mllm import (  # noqa: E402
    ActionFormat,
    LocalCheckpointError,
    MLLMPolicy,
    MLLMPolicyConfig,
    ParsedAction,
    build_tiny_idefics3,
    build_tiny_llava,
)
from segenv.actions import BoxPrompt, Click  # noqa: E402
from segenv.rollout import run_episode  # noqa: E402

BUILDERS = {"llava": build_tiny_llava, "idefics3": build_tiny_idefics3}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def policies(checkpoints):
    return {name: MLLMPolicy(MLLMPolicyConfig(str(path), max_new_tokens=8, max_propose_rounds=1)) for name, path in checkpoints.items()}


@pytest.fixture(scope="module")
def env():
    e = gym.make("SegAgent-Shapes-v0", max_clicks=2, image_size=64, dataset_kwargs={"image_size": 64})
    yield e
    e.close()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_act_on_env_observation(policies, env, name):
    policy = policies[name]
    assert policy.needs_gt is False
    assert policy.device.type == "cpu" and policy.dtype == torch.float32
    obs, info = env.reset(seed=0, options={"index": 0})
    policy.reset(obs, info)
    action = policy.act(obs, info)
    assert action is None or isinstance(action, (Click, BoxPrompt))
    assert isinstance(policy.last_output, str)
    assert isinstance(policy.last_parsed, ParsedAction)
    assert (action is None) == (policy.last_parsed.error is not None)
    again = policy.act(obs, info)  # greedy: same observation, same answer
    assert policy.last_output == policy.last_parsed.text and again == action


@pytest.mark.parametrize("name, include_invalid", [("llava", True), ("idefics3", False)])
def test_propose_distinct_candidates(policies, env, name, include_invalid):
    policy = policies[name]
    obs, _ = env.reset(seed=1, options={"index": 1})
    cands = policy.propose(obs, 3, include_invalid=include_invalid)
    assert len(cands) <= 3
    assert len({(c.key(), c.text) for c in cands}) == len(cands)  # distinct
    valid = [c for c in cands if c.ok]
    assert cands[: len(valid)] == valid  # parsable candidates first
    assert len({c.key() for c in valid}) == len(valid)
    assert 3 <= len(policy.last_outputs) <= 3 + 3  # one generate call of 3, at most one top-up round
    if include_invalid:
        assert len(cands) >= 1
    else:
        assert all(c.ok for c in cands)


def test_scripted_answer_is_decoded_and_parsed(policies, env):
    """Replace generate by a scripted answer: only the new tokens are read, EOS/padding dropped."""
    policy = policies["llava"]
    tok = policy.tokenizer
    answer = tok("Current IOU: 40\nPositive point: (0.25, 0.75)", add_special_tokens=False)["input_ids"]
    real_generate = policy.model.generate

    def scripted(**kwargs):
        n = kwargs.get("num_return_sequences", 1)
        prompt = kwargs["input_ids"]
        tail = torch.tensor(answer + [tok.eos_token_id, tok.pad_token_id, tok.pad_token_id])
        return torch.cat([prompt.repeat(n, 1), tail.repeat(n, 1)], dim=1)

    policy.model.generate = scripted
    try:
        obs, info = env.reset(seed=0, options={"index": 2})
        action = policy.act(obs, info)
        assert policy.last_output == "Current IOU: 40\nPositive point: (0.25, 0.75)"
        assert action == Click(0.25, 0.75, True)
        assert policy.last_iou == pytest.approx(0.40)
        cands = policy.propose(obs, 3)  # all samples identical -> one distinct candidate
        assert [c.action for c in cands] == [Click(0.25, 0.75, True)]
        traj = run_episode(policy, env, seed=0, index=2)
        assert all(not s.invalid for s in traj.steps) and traj.steps[0].output == policy.last_output
    finally:
        policy.model.generate = real_generate


def test_invalid_answers_become_invalid_steps(policies, env):
    traj = run_episode(policies["idefics3"], env, seed=0, index=3)
    assert len(traj.steps) == 2
    for step in traj.steps:
        assert isinstance(step.output, str)
        assert step.invalid == (step.action is None)


def test_format_and_style_from_model_config(checkpoints):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = checkpoints["llava"]
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    model.config.segagent_coord_format = "loc"
    model.config.segagent_loc_grid = 7
    model.config.segagent_prompt_style = "qwen"
    policy = MLLMPolicy(MLLMPolicyConfig(str(path)), model=model, processor=processor)
    assert policy.action_format == ActionFormat("loc", loc_grid=7)
    assert policy.prompt_style == "qwen"
    msgs = policy.messages("the star")
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]}
    assert msgs[1]["content"][0] == {"type": "image"}
    override = MLLMPolicy(
        MLLMPolicyConfig(str(path), prompt_style="llava", action_format=ActionFormat("int1000", "yx")),
        model=model,
        processor=processor,
    )
    assert override.action_format.coord_format == "int1000" and override.prompt_style == "llava"


def test_hub_id_and_bad_folder_raise_clear_errors(tmp_path):
    with pytest.raises(LocalCheckpointError, match="local"):
        MLLMPolicy("aim-uofa/SegAgent-Model")
    with pytest.raises(FileNotFoundError, match="config.json"):
        MLLMPolicy(MLLMPolicyConfig(str(tmp_path)))
    with pytest.raises(ValueError):
        MLLMPolicyConfig("x", prompt_style="gpt")


def test_overlay_format_jpeg_is_a_pillow_default_quality_roundtrip():
    """#19 item 6: overlay_format='jpeg' hands the model the overlay as SegAgent's loop does: a JPEG
    at Pillow's default quality, read back."""
    import io

    from PIL import Image

    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig

    overlay = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    obs = {"overlay": overlay, "text": "x"}
    policy = MLLMPolicy.__new__(MLLMPolicy)
    policy.config = MLLMPolicyConfig(model_path="m", overlay_format="jpeg")
    buffer = io.BytesIO()
    Image.fromarray(overlay).save(buffer, format="JPEG", quality=75)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    got = np.asarray(policy.overlay_image(obs))
    assert np.array_equal(got, expected) and not np.array_equal(got, overlay)
    policy.config = MLLMPolicyConfig(model_path="m")
    assert np.array_equal(np.asarray(policy.overlay_image(obs)), overlay)
    with pytest.raises(ValueError, match="overlay_format"):
        MLLMPolicyConfig(model_path="m", overlay_format="gif")


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_beam_proposals_on_stock_layouts_are_distinct_and_deterministic(checkpoints, env, name):
    """Beam search through a stock LLaVA / Idefics3 generate (pixel inputs expanded per beam). A
    format without the IoU line lets the beams start at the answer's first token."""
    policy = MLLMPolicy(MLLMPolicyConfig(str(checkpoints[name]), max_new_tokens=8,
                                         action_format=ActionFormat(iou_line=False)))
    obs, _ = env.reset(seed=1, options={"index": 1})
    first = policy.propose(obs, 3, include_invalid=True, method="beam")
    assert len(policy.last_outputs) == 6  # 2 beams per candidate, every beam returned
    again = policy.propose(obs, 3, include_invalid=True, method="beam")
    assert [c.text for c in first] == [c.text for c in again]  # no sampling
    assert 1 <= len(first) <= 3 and len({c.text for c in first}) == len(first)
    with pytest.raises(ValueError, match="method"):
        policy.propose(obs, 3, method="nucleus")


def test_beam_proposals_of_the_shipped_policy_keep_its_iou_line_and_differ():
    from agents.registry import DEFAULT_TINY_CHECKPOINT

    policy = MLLMPolicy(MLLMPolicyConfig(str(DEFAULT_TINY_CHECKPOINT), do_sample=True))
    e = gym.make("SegAgent-ThinShapes-v0", split="val", image_size=256)
    obs, _ = e.reset(seed=0, options={"index": 0})
    e.close()
    greedy = policy.generate(obs, 1, do_sample=False)[0]
    state = torch.random.get_rng_state()
    cands = policy.propose(obs, 4, method="beam")
    assert torch.equal(state, torch.random.get_rng_state())  # deterministic: no sampling at all
    assert len(cands) == 4 and all(c.ok for c in cands)
    assert len({c.key() for c in cands}) == 4
    iou_line = greedy.text.splitlines()[0]
    assert iou_line.startswith("Current IOU") and all(c.text.splitlines()[0] == iou_line for c in cands)
