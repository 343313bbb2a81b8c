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


# ---------------------------------------------------------------------------------- distribution readouts
def test_distribution_readout_against_hand_computed_values():
    from agents.prm import distribution_readout

    sure = np.zeros(101)
    sure[57] = 1.0
    assert distribution_readout(sure, "median") == pytest.approx(57.0)
    assert distribution_readout(sure, "mean") == pytest.approx(57.0)
    top = np.zeros(101)
    top[100] = 1.0
    assert distribution_readout(top, "median") == pytest.approx(100.0)  # clipped, not 100.5
    split = np.zeros(101)
    split[10], split[90] = 0.25, 0.75
    assert distribution_readout(split, "mean") == pytest.approx(0.25 * 10 + 0.75 * 90)  # 70
    # bin 90 spans [89.5, 90.5]; 0.25 of the 0.5 still needed lies in it: 89.5 + 0.25 / 0.75
    assert distribution_readout(split, "median") == pytest.approx(89.5 + 1 / 3)
    with pytest.raises(ValueError, match="shape"):
        distribution_readout(np.ones(100) / 100, "median")


def test_readout_needs_one_token_per_value_and_a_model(llava_prm):
    from agents.prm import iou_value_tokens

    with pytest.raises(ValueError, match="readout"):
        PRM(EchoSource(), readout="mode")
    with pytest.raises(ValueError, match="needs a policy source"):
        PRM(EchoSource(), readout="median")
    # the tiny LLaVA's byte-level BPE writes 57 as '5', '7': a distribution over it is refused
    with pytest.raises(ValueError, match="several tokens.*greedy"):
        iou_value_tokens(llava_prm.source.policy.tokenizer)


def test_median_readout_is_the_median_of_the_first_answer_token_distribution():
    """tiny_prm's IoU line is one token per value: PRM(readout='median') reads the median of those 101
    probabilities at the answer's first position (computed here by hand from one forward pass), and
    the greedy readout is their argmax."""
    pytest.importorskip("transformers")
    import torch

    from agents.prm import distribution_readout, iou_value_tokens
    from agents.registry import TINY_PRM_CHECKPOINT

    greedy = PRM.from_checkpoint(TINY_PRM_CHECKPOINT, device="cpu")
    median = PRM(greedy.source.policy, readout="median")
    env = gym.make("SegAgent-Shapes-v0", split="test", initial_state="points", image_size=224)
    obs = [env.reset(seed=i, options={"index": i})[0] for i in range(3)]
    env.close()
    read = median.score_many(obs)
    stated = greedy.score_many(obs)
    values = iou_value_tokens(greedy.source.policy.tokenizer)
    ids = torch.tensor(list(values))
    by_hand = []
    for o in obs:
        inputs = greedy.source._inputs([o])
        with torch.inference_mode():
            logits = greedy.source.policy.model(**inputs).logits[0, -1].double()
        probs = torch.softmax(logits[ids], 0).numpy()
        per_value = np.zeros(101)
        np.add.at(per_value, list(values.values()), probs)
        by_hand.append(distribution_readout(per_value, "median") / 100)
        assert stated[len(by_hand) - 1] == pytest.approx(int(np.argmax(per_value)) / 100)
    assert read == pytest.approx(by_hand, abs=1e-6)
    assert median.last_texts == greedy.last_texts  # the answers themselves are unchanged
    assert not np.allclose(read, stated)  # the readout is a different number, not the stated one


def test_policy_iou_readout_writes_the_median_and_the_action_follows_it():
    """MLLMPolicyConfig.iou_readout='median': the number the policy writes is the PRM's median of
    the same observation (one token per value), the greedy policy writes the argmax, and the action
    is decoded after the written number. Pinned case: Shapes test item 73 after tiny28's first click
    (a mask spilling over a second shape, true IoU 0.44): greedy states 99 and answers Finish, the
    median reads 91 and the policy clicks negative instead."""
    pytest.importorskip("transformers")
    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from agents.registry import DEFAULT_TINY_CHECKPOINT
    from segenv.actions import Click, Finish

    path = str(DEFAULT_TINY_CHECKPOINT.parent / "tiny28")
    greedy = MLLMPolicy(MLLMPolicyConfig(model_path=path, device="cpu"))
    median = MLLMPolicy(MLLMPolicyConfig(model_path=path, device="cpu", iou_readout="median"),
                        model=greedy.model, processor=greedy.processor)
    prm = PRM(greedy, readout="median")
    env = gym.make("SegAgent-Shapes-v0", split="test", image_size=224)
    obs, info = env.reset(seed=73, options={"index": 73})
    obs, _, _, _, info = env.step(greedy.act(obs, info))
    assert info["iou"] == pytest.approx(0.441, abs=0.005)
    assert isinstance(greedy.act(obs, info), Finish) and greedy.last_iou >= 0.98
    action = median.act(obs, info)
    assert isinstance(action, Click) and not action.positive
    assert median.last_iou == pytest.approx(round(prm.score(obs) * 100) / 100)
    assert median.last_iou < 0.95
    for k in range(3):  # elsewhere too: the written number is the PRM's median, rounded to a value token
        o, i = env.reset(seed=k, options={"index": k})
        median.act(o, i)
        assert median.last_iou == pytest.approx(round(prm.score(o) * 100) / 100)
    env.close()


def test_policy_iou_readout_is_refused_where_it_cannot_work(llava_prm):
    from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig
    from agents.mllm.prompt import ActionFormat

    policy = llava_prm.source.policy
    with pytest.raises(ValueError, match="iou_readout must be one of"):
        MLLMPolicyConfig(model_path="unused", iou_readout="mode")
    with pytest.raises(ValueError, match="several tokens.*greedy"):  # '57' is '5', '7' in this tokenizer
        MLLMPolicy(MLLMPolicyConfig(model_path=policy.config.model_path, action_format=ActionFormat(iou_line=True),
                                    iou_readout="median"), model=policy.model, processor=policy.processor)
    with pytest.raises(ValueError, match="this action format has none"):
        MLLMPolicy(MLLMPolicyConfig(model_path=policy.config.model_path, action_format=ActionFormat(iou_line=False),
                                    iou_readout="median"), model=policy.model, processor=policy.processor)
