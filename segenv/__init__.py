"""segenv: language-referred interactive segmentation as a Gymnasium environment.

Importing the package registers every env id (``gym.make("SegAgent-Shapes-v0")``); models load
lazily inside their segmenter backend, so this import needs no torch.

Batched vector env (one segmenter call per vector step, every id)::

    gym.make_vec(segenv.vector_spec("SegAgent-Shapes-v0"), num_envs=8, vectorization_mode="vector_entry_point")

The ids do not name ``vector_entry_point`` themselves: gymnasium 1.4 refuses that mode for specs
with ``additional_wrappers`` (ours: ``ClickBudgetTimeLimit``), and naming it would make it
``make_vec``'s failing default. See :mod:`segenv.vector`.
"""

from gymnasium.envs import registration as _gym_registration  # not `registry`: segenv.registry is a submodule
from gymnasium.envs.registration import register

from .actions import INVALID, STOP, BoxPrompt, Click, Finish, NoObject, parse_action
from .datasets import DatasetNotFoundError, Sample, make_dataset
from .env import SegEnv
from .segmenters import make_segmenter
from .vector import SegVectorEnv, vector_spec
from .wrappers import time_limit_kwargs

__version__ = "0.1.0"

# id -> (dataset name, default split, extra kwargs). One screen: the whole catalogue.
ENV_SPECS: dict[str, tuple[str, str, dict]] = {
    # clicknet (the learned tiny click segmenter, docs/clicknet.md) beats GrabCut on Shapes; on
    # ThinShapes GrabCut still needs fewer clicks (docs/benchmarks.md), so it stays the default there
    "SegAgent-Shapes-v0": ("shapes", "test", {"segmenter": "clicknet"}),
    "SegAgent-ThinShapes-v0": ("thin_shapes", "test", {"max_clicks": 11}),
    # 10% of the captions name an absent object (empty mask; answer NoObject); Box(4) actions reach it
    "SegAgent-ShapesNoTarget-v0": (
        "shapes", "test", {"dataset_kwargs": {"no_target_fraction": 0.1}, "action_mode": "full", "segmenter": "clicknet"}
    ),
    "SegAgent-RefCOCO-v0": ("refcoco", "val", {}),
    "SegAgent-RefCOCOplus-v0": ("refcoco+", "val", {}),
    "SegAgent-RefCOCOg-v0": ("refcocog", "val", {}),
    "SegAgent-ThinObject5k-v0": ("thinobject5k", "test", {"max_clicks": 11}),
    "SegAgent-DIS5K-v0": ("dis5k", "val", {"max_clicks": 11}),
    "SegAgent-GrabCut-v0": ("grabcut", "test", {"max_clicks": 20, "target_iou": 0.9}),
    "SegAgent-Berkeley-v0": ("berkeley", "test", {"max_clicks": 20, "target_iou": 0.9}),
    "SegAgent-DAVIS-v0": ("davis", "test", {"max_clicks": 20, "target_iou": 0.9}),
}

for _id, (_dataset, _split, _extra) in ENV_SPECS.items():
    if _id not in _gym_registration.registry:
        # max_episode_steps = the id's max_clicks + 1 (a box first action), kept equal to a max_clicks
        # given to gym.make by segenv.wrappers.ClickBudgetTimeLimit
        register(id=_id, entry_point="segenv.env:SegEnv", kwargs={"dataset": _dataset, "split": _split, **_extra},
                 **time_limit_kwargs(_extra))

__all__ = [
    "BoxPrompt",
    "Click",
    "DatasetNotFoundError",
    "ENV_SPECS",
    "Finish",
    "INVALID",
    "NoObject",
    "STOP",
    "Sample",
    "SegEnv",
    "SegVectorEnv",
    "make_dataset",
    "make_segmenter",
    "parse_action",
    "vector_spec",
]
