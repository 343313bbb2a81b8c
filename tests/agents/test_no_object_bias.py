"""MLLMPolicyConfig.no_object_bias: a decision threshold on `No Object Found` (issue #21).

Small random-weight tiny VLMs (the shipped model's tokenizer and answer grammar) whose forward is
steered so that the answer's first line is fixed (``Current IOU: 50``): then where an action may
begin is known, and the bias's effect is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import agents  # noqa: E402,F401  (registers the tiny VLM with the Auto classes)
from agents.mllm.policy import MLLMPolicy, MLLMPolicyConfig  # noqa: E402
from agents.mllm.prompt import NO_OBJECT_TEXT, action_may_begin  # noqa: E402
from agents.mllm.tiny_build import build_tiny_vlm  # noqa: E402
from segenv.actions import NoObject  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, pointer_dim=16,
             cnn_channels=(8, 8, 16), loc_grid=14, image_size=112)
IOU_LINE = "Current IOU: 50\n"


def _obs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"overlay": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
            "text": ["the red circle", "the small blue square", "the star"][seed % 3]}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return build_tiny_vlm(str(tmp_path_factory.mktemp("tiny_nobias")), **SMALL)


def _steered(saved, no_object_boost: float = 0.0):
    """(model, processor): the first answer token is IOU_LINE; right after it the score of
    `No Object Found` is raised by ``no_object_boost``; ``<image>`` is never generated."""
    processor = AutoProcessor.from_pretrained(saved)
    model = AutoModelForImageTextToText.from_pretrained(saved)
    tok = processor.tokenizer
    ans, iou, no, image = (tok.convert_tokens_to_ids(t) for t in ("<ans>", IOU_LINE, NO_OBJECT_TEXT, "<image>"))
    forward = model.forward

    def steered(*args, **kwargs):
        out = forward(*args, **kwargs)
        ids = kwargs["input_ids"]
        out.logits[ids[:, -1] == ans, -1, iou] += 1e3
        out.logits[(ids[:, -1] == iou) & (ids[:, -2] == ans), -1, no] += no_object_boost
        out.logits[..., image] = -1e9  # a sampled <image> token would break the tiny model's next forward
        return out

    model.forward = steered
    return model, processor


def _policy(saved, model, processor, **config) -> MLLMPolicy:
    return MLLMPolicy(MLLMPolicyConfig(model_path=saved, **config), model=model, processor=processor)


def test_action_may_begin_follows_the_answer_grammar():
    assert action_may_begin("Current IOU: 12\n", iou_line=True) and action_may_begin(" current iou: 7 \n", iou_line=False)
    assert not action_may_begin("", iou_line=True) and action_may_begin("", iou_line=False)
    assert action_may_begin("Current IOU: 12\nCurrent IOU: 3\n", iou_line=True)  # repeated: still before the action
    assert not action_may_begin("Current IOU: 12", iou_line=True)  # the line is not finished
    assert not action_may_begin("Current IOU: 12\nPositive point: ", iou_line=True)


def test_zero_bias_is_the_model_as_trained(saved):
    model, processor = _steered(saved)
    plain = _policy(saved, model, processor)
    zero = _policy(saved, model, processor, no_object_bias=0.0)
    assert zero._no_object_id is None  # no logits processor at all
    for seed in range(4):
        obs = _obs(seed)
        plain.act(obs, {})
        zero.act(obs, {})
        assert zero.last_output == plain.last_output
        torch.manual_seed(seed)
        a = [p.text for p in plain.generate(obs, 3, do_sample=True)]
        torch.manual_seed(seed)
        assert [p.text for p in zero.generate(obs, 3, do_sample=True)] == a
    # the processor itself with bias 0 leaves every score as it is
    inputs = plain.build_inputs(_obs(0))
    proc = plain._no_object_processor(inputs, 0.0, processor.tokenizer.convert_tokens_to_ids(NO_OBJECT_TEXT))
    iou = processor.tokenizer.convert_tokens_to_ids(IOU_LINE)
    ids = torch.cat([inputs["input_ids"], torch.tensor([[iou]])], 1)
    scores = torch.randn(1, len(processor.tokenizer))
    assert torch.equal(proc(ids, scores.clone()), scores) and proc.margins[0] is not None


def test_large_positive_bias_answers_no_object(saved):
    model, processor = _steered(saved)
    policy = _policy(saved, model, processor, no_object_bias=1e3)
    for seed in range(3):
        assert isinstance(policy.act(_obs(seed), {}), NoObject)
        assert policy.last_output.startswith(IOU_LINE + NO_OBJECT_TEXT)  # the IoU line is not biased


def test_large_negative_bias_never_answers_no_object(saved):
    model, processor = _steered(saved, no_object_boost=100.0)
    assert isinstance(_policy(saved, model, processor).act(_obs(0), {}), NoObject)
    # two tokens: the IoU line and the action word (random weights ramble on after it)
    policy = _policy(saved, model, processor, no_object_bias=-1e3, temperature=2.0, max_new_tokens=2)
    for seed in range(3):
        assert not isinstance(policy.act(_obs(seed), {}), NoObject)
        assert "No Object" not in policy.last_output
        assert not any("No Object" in p.text for p in policy.generate(_obs(seed), 4, do_sample=True))


def test_margin_is_the_exact_greedy_threshold(saved):
    """Greedy decoding answers No Object Found iff margin + bias > 0."""
    model, processor = _steered(saved)
    probe = _policy(saved, model, processor)
    for seed in range(3):
        obs = _obs(seed)
        m = probe.no_object_margin(obs)
        assert math.isfinite(m) and m < 0  # the random model prefers something else
        # two tokens (the IoU line and the action word): random weights ramble on after it
        assert isinstance(_policy(saved, model, processor, no_object_bias=-m + 1e-3, max_new_tokens=2).act(obs, {}), NoObject)
        below = _policy(saved, model, processor, no_object_bias=-m - 1e-3, max_new_tokens=2)
        assert not isinstance(below.act(obs, {}), NoObject) and below.last_output.startswith(IOU_LINE)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "1.0", True, None])
def test_invalid_bias_is_a_clear_error(saved, bad):
    with pytest.raises(ValueError, match="no_object_bias must be a finite number"):
        MLLMPolicyConfig(model_path=saved, no_object_bias=bad)


def test_a_tokenizer_that_cannot_write_the_answer_is_refused(tmp_path):
    path = build_tiny_vlm(str(tmp_path / "no_iou"), iou_line=False, **SMALL)  # no end-answer tokens
    MLLMPolicy(MLLMPolicyConfig(model_path=path))  # fine without a bias
    with pytest.raises(ValueError, match="cannot write 'No Object Found'"):
        MLLMPolicy(MLLMPolicyConfig(model_path=path, no_object_bias=2.0))


def test_any_tokenizer_gets_the_bias_at_the_answer_start(tmp_path):
    """A byte-level BPE stock checkpoint without an IoU line: the action may begin at once."""
    from agents.mllm import build_tiny_llava

    path = build_tiny_llava(tmp_path / "llava")
    policy = MLLMPolicy(MLLMPolicyConfig(str(path), max_new_tokens=4, no_object_bias=1e4))
    first = policy.tokenizer(NO_OBJECT_TEXT, add_special_tokens=False)["input_ids"][0]
    policy.act(_obs(0), {})
    assert policy.last_output.startswith(policy.tokenizer.decode([first]).strip())


def test_cli_flag_reaches_the_policy(saved, monkeypatch):
    import agents.evaluate as ev
    from agents.registry import make_agent

    seen = {}

    class Built(Exception):
        pass

    def capture(name, **options):
        seen.update(options, name=name)
        raise Built

    monkeypatch.setattr(ev, "make_agent", capture)
    args = ev.parse_args(["--agent", "mllm", "--model", saved, "--no-object-bias", "3.5", "--episodes", "1"])
    assert args.no_object_bias == 3.5 and "no_object_bias" in ev.RUN_IDENTITY
    with pytest.raises(Built):
        ev.evaluate(args)
    assert seen["name"] == "mllm" and seen["no_object_bias"] == 3.5
    agent = make_agent("mllm", model=saved, no_object_bias=seen["no_object_bias"])
    assert agent.config.no_object_bias == 3.5 and agent._no_object_id is not None
    with pytest.raises(SystemExit):
        ev.parse_args(["--no-object-bias", "nan"])
    with pytest.raises(ValueError, match="finite"):
        make_agent("mllm", model=saved, no_object_bias=float("inf"))
