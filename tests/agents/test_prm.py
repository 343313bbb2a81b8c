"""agents.prm: the policy's ``Current IOU`` line as a process reward, K observations per model call."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401
from agents.prm import PRM, AnswerSource


class EchoSource:
    """An AnswerSource whose answer is the observation's ``text``; records each call's batch size."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def answer_texts(self, observations):
        self.calls.append(len(observations))
        return [obs["text"] for obs in observations]


def _obs(text: str) -> dict:
    return {"overlay": np.zeros((8, 8, 3), np.uint8), "text": text}


def test_parser_reads_the_iou_line_and_records_unparsable_answers():
    source = EchoSource()
    prm = PRM(source)
    texts = [
        "Current IOU: 74\nPositive point: (0.10, 0.20)",
        "Current IOU: 85.2",  # decimals allowed; no action needed to read the reward
        "current iou: 0\nFinish",
        "Positive point: (0.10, 0.20)",  # no IoU line
        "Current IOU: 120\nNegative point: (0.50, 0.50)",  # outside 0..100
        "Current IOU: lots",
        "",
    ]
    scores = prm.score_many([_obs(t) for t in texts])
    assert source.calls == [len(texts)]  # one call for the whole batch
    assert scores[:3] == pytest.approx([0.74, 0.852, 0.0])
    assert all(math.isnan(s) for s in scores[3:])
    assert prm.n_scored == 7 and prm.n_unparsable == 4
    assert prm.last_texts == texts
    assert prm.last_parsed[0].click is not None and prm.last_parsed[0].iou == pytest.approx(0.74)
    assert prm.score(_obs("Current IOU: 31\nNegative point: (0.5, 0.5)")) == pytest.approx(0.31)
    assert source.calls == [7, 1] and prm.n_scored == 8 and prm.n_unparsable == 4


def test_bad_sources_are_clear_errors():
    with pytest.raises(TypeError, match="answer_texts"):
        PRM(object())

    class Short:
        def answer_texts(self, observations):
            return ["Current IOU: 50"]

    assert isinstance(Short(), AnswerSource)
    with pytest.raises(RuntimeError, match="1 texts for 2"):
        PRM(Short()).score_many([_obs("a"), _obs("b")])


def test_hub_id_is_refused_for_a_reward_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from agents.mllm import LocalCheckpointError

    with pytest.raises(LocalCheckpointError, match="local"):
        PRM.from_checkpoint("aim-uofa/SegAgent-Model")
    with pytest.raises(LocalCheckpointError, match="config.json"):
        PRM.from_checkpoint(tmp_path)


# ---------------------------------------------------------------------------------- a real tiny LLaVA
@pytest.fixture(scope="module")
def llava_prm(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agents.mllm import build_tiny_llava

    path = build_tiny_llava(tmp_path_factory.mktemp("prm_llava") / "llava")
    return PRM.from_checkpoint(path, device="cpu", max_new_tokens=6)


@pytest.fixture(scope="module")
def observations():
    env = gym.make("SegAgent-Shapes-v0", initial_state="points", image_size=64, dataset_kwargs={"image_size": 64})
    obs = [env.reset(seed=i, options={"index": i})[0] for i in range(4)]
    env.close()
    assert len({len(o["text"]) for o in obs}) > 1  # captions of different lengths: padding is exercised
    return obs


def _count_generate(model):
    calls: list[dict] = []
    real = model.generate

    def counted(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    return calls, real, counted


def test_score_many_is_one_batched_generate_equal_to_one_by_one(llava_prm, observations):
    policy = llava_prm.source.policy
    calls, real, counted = _count_generate(policy.model)
    policy.model.generate = counted
    try:
        scores = llava_prm.score_many(observations)
        assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == len(observations)
        assert bool((calls[0]["attention_mask"][:, -1] == 1).all())  # padded on the left
        batched = list(llava_prm.last_texts)
        one_by_one = [policy.generate(o, 1, do_sample=False)[0].text for o in observations]
    finally:
        policy.model.generate = real
    assert batched == one_by_one  # left padding changes no answer
    assert len(scores) == len(observations)
    assert llava_prm.source.generate_calls >= 1


def test_scripted_iou_answers_are_decoded_and_scored(llava_prm, observations):
    """generate replaced by a scripted batch answer: the new tokens are decoded (EOS/padding cut) and parsed."""
    import torch

    policy = llava_prm.source.policy
    tok = policy.tokenizer
    answers = [f"Current IOU: {v}\nPositive point: (0.25, 0.75)" for v in (12, 40, 97, 5)]
    ids = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in answers]
    width = max(len(i) for i in ids)
    tails = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i in ids])
    calls: list[int] = []

    def scripted(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return torch.cat([kwargs["input_ids"], tails[: kwargs["input_ids"].shape[0]]], dim=1)

    real = policy.model.generate
    policy.model.generate = scripted
    try:
        scores = llava_prm.score_many(observations)
        single = llava_prm.score(observations[0])
    finally:
        policy.model.generate = real
    assert calls == [4, 1]
    assert scores == pytest.approx([0.12, 0.40, 0.97, 0.05])
    assert single == pytest.approx(0.12)
    assert llava_prm.last_texts == answers[:1]


def test_shipped_reward_model_rates_an_empty_mask_low_and_a_refined_one_high():
    """agents/mllm/checkpoints/tiny_prm (the PRM fine-tune, docs/tiny_vlm.md) loads and judges masks."""
    pytest.importorskip("transformers")
    from agents.oracle import OracleAgent
    from agents.registry import TINY_PRM_CHECKPOINT

    prm = PRM.from_checkpoint(TINY_PRM_CHECKPOINT, device="cpu")
    env = gym.make("SegAgent-Shapes-v0", split="test", max_clicks=5, image_size=224)
    obs, info = env.reset(seed=0)
    empty_score = prm.score(obs)
    oracle = OracleAgent(seed=0)
    oracle.reset(obs, info)
    for _ in range(4):
        if info["iou"] >= 0.95:
            break
        obs, _, terminated, truncated, info = env.step(oracle.act(obs, info))
        if terminated or truncated:
            break
    assert info["iou"] >= 0.9, "the oracle should have refined this item"
    scores = prm.score_many([obs, obs])
    assert empty_score <= 0.3 < 0.7 <= scores[0] and scores[0] == scores[1]
