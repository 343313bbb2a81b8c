"""agents.tree_search: PRM-guided search over K candidates, batched, seeded, stopping with Finish."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import segenv  # noqa: F401
from agents.mllm.prompt import ParsedAction
from agents.prm import PRM
from agents.tree_search import TreeSearchAgent, TreeSearchConfig
from segenv.actions import Click, Finish, NoObject
from segenv.rollout import run_episode

CANDIDATES = [Click(0.5, 0.5, True), Click(0.2, 0.2, True), Click(0.8, 0.3, True), Click(0.3, 0.8, True)]


class FakePolicy:
    """Greedy answer: the first candidate (or ``greedy`` when given); proposals: the others, in order."""

    def __init__(self, greedy=None):
        self.greedy = greedy or CANDIDATES[0]
        self.proposed: list[int] = []

    def generate(self, obs, n=1, do_sample=None):
        return [ParsedAction(action=self.greedy, iou=None, text=f"{self.greedy}")]

    def propose(self, obs, k):
        self.proposed.append(k)
        return [ParsedAction(action=c, text=repr(c)) for c in CANDIDATES[1 : 1 + k]]


class AreaPRM:
    """States ``sign * mask area`` as the IoU (bigger masks rated better when sign > 0); records batches."""

    def __init__(self, sign: float = 1.0):
        self.sign = sign
        self.calls: list[int] = []

    def answer_texts(self, observations):
        self.calls.append(len(observations))
        out = []
        for obs in observations:
            area = float((np.asarray(obs["mask"]) > 0).mean())
            score = 50 + 50 * self.sign * min(1.0, 10 * area) if self.sign else 50
            out.append(f"Current IOU: {score:.1f}\nPositive point: (0.5, 0.5)")
        return out


def _env():
    return gym.make("SegAgent-Shapes-v0", image_size=64, max_clicks=3, disable_env_checker=True)


def test_search_takes_the_candidate_the_prm_rates_best_in_one_batch_per_step():
    env = _env()
    source = AreaPRM(+1)
    agent = TreeSearchAgent(FakePolicy(), PRM(source), TreeSearchConfig(k=4))
    traj = run_episode(agent, env, seed=0, index=3)
    # step 1: the chosen click is the one whose previewed mask is largest
    env2 = _env()
    env2.reset(seed=0, options={"index": 3})
    areas = [(p["mask"] > 0).sum() for p in env2.unwrapped.preview(CANDIDATES)]
    assert traj.steps[0].action[1:3] == pytest.approx([CANDIDATES[int(np.argmax(areas))].x, CANDIDATES[int(np.argmax(areas))].y])
    # step 1: one PRM call for the current mask and one batch for the K candidates; later steps reuse the
    # score of the chosen candidate's mask, so each costs one PRM batch and one segmenter batch
    assert source.calls == [1] + [4] * agent.stats.preview_calls and agent.stats.prm_calls == len(source.calls)
    assert agent.stats.preview_calls == agent.stats.steps - agent.stats.stopped_by_policy
    assert agent.last_search["scores"] and agent.last_iou is not None
    assert traj.steps[0].predicted_iou == pytest.approx(0.5)  # the empty mask's stated IoU, recorded by the harness


def test_tie_margin_leaves_near_ties_to_the_policys_order():
    """With a margin, the first candidate (the greedy one first) whose score is within it of the
    best, among those that improve on the current mask, is taken; margin 0 takes the best."""
    env = _env()
    env.reset(seed=0, options={"index": 7})
    areas = [float((p["mask"] > 0).mean()) for p in env.unwrapped.preview(CANDIDATES)]
    scores = [min(1.0, 0.5 + 0.5 * min(1.0, 10 * a)) for a in areas]  # AreaPRM; the empty mask: 0.5
    best = int(np.argmax(scores))
    assert best != 0 and scores[best] > scores[0] > 0.5  # the greedy click improves, another more
    gap = scores[best] - scores[0]
    for margin, expected in ((1.0, 0), (0.0, best), (gap + 1e-6, 0), (gap - 1e-3, best)):
        agent = TreeSearchAgent(FakePolicy(), PRM(AreaPRM(+1)), TreeSearchConfig(k=4, tie_margin=margin))
        traj = run_episode(agent, env, seed=0, index=7)
        assert traj.steps[0].action[1:3] == pytest.approx([CANDIDATES[expected].x, CANDIDATES[expected].y]), margin
    with pytest.raises(ValueError, match="tie_margin"):
        TreeSearchConfig(tie_margin=-0.1)


def test_finish_when_no_candidate_is_predicted_better_and_the_rule_can_be_switched_off():
    env = _env()
    agent = TreeSearchAgent(FakePolicy(), PRM(AreaPRM(-1)), TreeSearchConfig(k=3))  # any mask rated worse than none
    traj = run_episode(agent, env, seed=0, index=1)
    assert traj.end_action == "finish" and len(traj.steps) == 1 and agent.stats.stopped_by_prm == 1
    assert agent.last_search["stop"] == "prm"
    keep_going = TreeSearchAgent(FakePolicy(), PRM(AreaPRM(-1)), TreeSearchConfig(k=3, stop_when_no_gain=False))
    traj = run_episode(keep_going, env, seed=0, index=1)
    assert traj.end_action is None and traj.clicks_used == 3 and keep_going.stats.stopped_by_prm == 0


@pytest.mark.parametrize("end, name", [(Finish(), "finish"), (NoObject(), "no_object")])
def test_the_policys_own_end_answer_ends_the_episode(end, name):
    policy = FakePolicy(greedy=end)
    agent = TreeSearchAgent(policy, PRM(AreaPRM(+1)), TreeSearchConfig(k=4))
    traj = run_episode(agent, _env(), seed=0, index=0)
    assert traj.end_action == name and policy.proposed == [] and agent.stats.stopped_by_policy == 1


def test_bad_configs_and_a_missing_lookahead_are_clear_errors():
    with pytest.raises(ValueError, match="k >= 1"):
        TreeSearchConfig(k=0)
    with pytest.raises(ValueError, match="stop_margin"):
        TreeSearchConfig(stop_margin=math.nan)
    with pytest.raises(ValueError, match="prm_readout"):
        TreeSearchConfig(prm_readout="argmax")
    with pytest.raises(ValueError, match="proposals"):
        TreeSearchConfig(proposals="nucleus")
    with pytest.raises(TypeError, match="propose"):
        TreeSearchAgent(object(), PRM(AreaPRM()))
    agent = TreeSearchAgent(FakePolicy(), PRM(AreaPRM()))
    with pytest.raises(RuntimeError, match="run_episode"):
        agent.act({"overlay": np.zeros((4, 4, 3), np.uint8), "mask": np.zeros((4, 4), np.uint8), "text": "x"}, {})


CHECKPOINT = Path(__file__).resolve().parents[2] / "agents" / "mllm" / "checkpoints" / "tiny"


def test_the_shipped_policy_searches_reproducibly_without_touching_the_global_rng():
    torch = pytest.importorskip("torch")
    from agents.tree_search import make_tree_search_agent

    env = gym.make("SegAgent-Shapes-v0", image_size=224, max_clicks=3, initial_state="points", disable_env_checker=True)
    runs = []
    for _ in range(2):
        agent = make_tree_search_agent(str(CHECKPOINT), k=3, seed=7, stop_when_no_gain=False)
        torch.manual_seed(123)
        before = torch.rand(1)
        torch.manual_seed(123)
        trajs = [run_episode(agent, env, seed=k, index=k) for k in (0, 4)]
        assert torch.rand(1) == before  # the search's seeded sampling ran in a forked RNG
        runs.append([[s.action for s in t.steps] for t in trajs])
        # the PRM's greedy answer on the chosen mask is reused: at most one extra PRM call per episode
        assert agent.stats.prm_calls <= agent.stats.preview_calls + 2
        assert agent.stats.candidates >= agent.stats.preview_calls
    assert runs[0] == runs[1]


def test_the_policys_own_line_can_be_read_as_a_median_over_beam_proposals():
    """prm_readout='median' makes the self-PRM read its distribution (the searched scores are then
    not all whole percentages, the stated line is); beam proposals give k distinct clicks."""
    pytest.importorskip("torch")
    from agents.tree_search import make_tree_search_agent

    env = gym.make("SegAgent-Shapes-v0", image_size=224, max_clicks=2, initial_state="empty", disable_env_checker=True)
    agent = make_tree_search_agent(str(CHECKPOINT), k=3, seed=7, stop_when_no_gain=False, prm_readout="median",
                                   proposals="beam")
    assert agent.shares_model and agent.prm.source.readout == "median"
    scores: list[float] = []
    done = agent._done

    def recording(action, text, search):
        scores.extend(search.get("scores", []) + [search["current"]])
        return done(action, text, search)

    agent._done = recording
    for k in (0, 1, 2):
        run_episode(agent, env, seed=k, index=k)
    env.close()
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    assert agent.stats.candidates >= 3 * agent.stats.preview_calls  # beams give k distinct clicks
    assert any(abs(s * 100 - round(s * 100)) > 1e-6 for s in scores)
