"""#19: the harness under --protocol segagent on a hand-made RefCOCO-layout fixture, with a scripted
stand-in policy: the scored masks, the item count, the clicked pixels and the SAM point coordinates
handed to the decoder, each against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agents.registry import AGENTS, register_agent  # noqa: E402
from benchmarks.run import main  # noqa: E402
from segenv.actions import Click  # noqa: E402
from segenv.segmenters import tiny  # noqa: E402
from segenv.segmenters.sam import SamSegmenter  # noqa: E402

CLICKS = [(0.5, 0.5, True), (0.21, 0.77, False), (0.9, 0.1, True)]  # (x, y, positive), the same every episode
STATED = [0.30, 0.90, 0.20]  # the stand-in's "Current IOU" before each click: step 2's is the largest


class ScriptedStandIn:
    """States an IoU and clicks a fixed script (what a released checkpoint's loop records)."""

    needs_gt = False

    def reset(self, obs, info):
        self.k, self.last_iou = 0, None

    def act(self, obs, info):
        x, y, positive = CLICKS[self.k]
        self.last_iou = STATED[self.k]
        self.k += 1
        return Click(x, y, positive)


def test_protocol_segagent_end_to_end(tmp_path, real_data_root, monkeypatch):
    register_agent("protocol-standin")(lambda **_: ScriptedStandIn())
    checkpoint = tiny.save_tiny_sam_pth(str(tmp_path / "tiny_sam.pth"), image_size=256)
    seen: list[np.ndarray] = []  # the point coordinates each decoder call gets (the model's input frame)
    run_decoder = SamSegmenter._run_decoder

    def spy(self, group, multimask):
        seen.append(group[0].coords.cpu().numpy().copy())
        return run_decoder(self, group, multimask)

    monkeypatch.setattr(SamSegmenter, "_run_decoder", spy)
    out = tmp_path / "p.json"
    try:
        s = main(["--agent", "protocol-standin", "--env", "SegAgent-RefCOCO-v0", "--data-root", str(real_data_root),
                  "--segmenter", f"sam:{checkpoint}", "--protocol", "segagent", "--episodes", "0", "--max-clicks", "3",
                  "--image-size", "64", "--out", str(out), "--no-progress"])
    finally:
        AGENTS.remove("protocol-standin")
    assert "protocol-standin" not in AGENTS
    import gymnasium as gym

    env = gym.make("SegAgent-RefCOCO-v0", data_root=str(real_data_root), segmenter="grabcut")
    items = [env.unwrapped.dataset[i] for i in range(len(env.unwrapped.dataset))]
    # item count: every sentence item of the split (fewer than the protocol's 5,000), none empty here
    assert s["episodes"] == len(items) and s["limit"] == 5000 and s["empty_targets_skipped"] == 0
    episodes = [json.loads(line) for line in out.with_suffix(".episodes.jsonl").read_text().splitlines()]
    # scored mask: best_predicted = the mask step 2's 0.90 was stated FOR = the mask after step 1
    assert s["score_rule"] == "best_predicted"
    assert s["miou"] == pytest.approx(np.mean([e["steps"][0]["iou"] for e in episodes]))
    assert s["miou_by_rule"]["final"] == pytest.approx(np.mean([e["steps"][-1]["iou"] for e in episodes]))
    assert s["ciou"] == pytest.approx(sum(e["steps"][0]["intersection"] for e in episodes)
                                      / sum(e["steps"][0]["union"] for e in episodes))
    # clicked pixels and the SAM coordinates: (col, row) = (floor(x W), floor(y H)), scaled by the
    # longest-side-256 frame of this test model, no half-pixel offset
    first = items[0]
    h, w = first.mask.shape
    scale = 256 / max(h, w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    want = np.array([[int(x * w) * nw / w, int(y * h) * nh / h] for x, y, _ in CLICKS], np.float32)
    calls = [c for c in seen if c.shape[-2] > 0]
    assert [c.shape for c in calls[:3]] == [(1, 2), (2, 2), (3, 2)]  # every call gets all clicks so far
    assert np.allclose(calls[0], want[:1]) and np.allclose(calls[1], want[:2]) and np.allclose(calls[2], want)
