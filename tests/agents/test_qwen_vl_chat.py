"""The released SegAgent-Qwen loop (#19 item 7): Qwen-VL-Chat through its remote code, on a stand-in
folder built here (the real checkpoint was not run)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.mllm.qwen_vl_chat import QwenVLChatConfig, QwenVLChatPolicy, needs_remote_code, released_prompt  # noqa: E402
from agents.registry import make_agent  # noqa: E402
from segenv.actions import Click  # noqa: E402

from .qwen_standin import build_qwen_standin  # noqa: E402


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return build_qwen_standin(tmp_path_factory.mktemp("qwen") / "SegAgent-Qwen-standin")


def test_remote_code_is_never_run_without_the_flag(standin):
    assert needs_remote_code(standin)
    with pytest.raises(ValueError, match="--trust-remote-code"):
        make_agent("mllm", model=str(standin))
    with pytest.raises(ValueError, match="runs Python files"):
        QwenVLChatPolicy(QwenVLChatConfig(model_path=str(standin)))


def test_released_prompt_and_the_answer_in_y_x(standin):
    policy = make_agent("mllm", model=str(standin), trust_remote_code=True)
    assert isinstance(policy, QwenVLChatPolicy)
    overlay = np.zeros((100, 200, 3), np.uint8)
    overlay[20:40, 150:170] = (0, 200, 0)  # a green blob: rows 20..39, cols 150..169
    action = policy.act({"overlay": overlay, "text": "the dog"}, {})
    assert isinstance(action, Click) and action.positive
    # the stand-in answers (y, x) of the blob's centroid in [0, 1000): parsed back to x = col, y = row
    assert action.x == pytest.approx(159.5 / 200, abs=0.01) and action.y == pytest.approx(29.5 / 100, abs=0.01)
    assert policy.last_iou == pytest.approx(0.42)
    prompt = policy.last_prompt
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPicture 1: <img>")
    assert prompt.endswith("<ref>the dog</ref><|im_end|>\n<|im_start|>assistant\n") and ".jpg</img>\n" in prompt
    assert released_prompt("a", "/x.jpg").count("<|im_start|>") == 3
    policy.close()


def test_benchmark_cli_runs_it(standin, tmp_path):
    from benchmarks.run import main

    s = main(["--agent", "mllm", "--model", str(standin), "--trust-remote-code", "--episodes", "2", "--max-clicks", "2",
              "--image-size", "64", "--initial-state", "points", "--out", str(tmp_path / "q.json"), "--no-progress"])
    assert s["episodes"] == 2 and s["invalid_step_rate"] == 0.0 and s["predicted_iou_steps"] == 4
    assert s["miou_by_rule"]["best_predicted"] >= 0.0
