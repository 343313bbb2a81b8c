"""SegEnv: referring segmentation by clicks, as a Gymnasium environment."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from . import render as R
from .actions import INVALID, Action, BoxPrompt, Click, NoObject, end_action_name, parse_action
from .datasets import Dataset, Sample, make_dataset
from .env_args import ACTION_MODES, check_env_args  # noqa: F401 (ACTION_MODES: public here too)
from .human_window import HumanWindow
from .initial_states import INITIAL_STATES as _INITIAL_STATE_REGISTRY
from .initial_states import InitialContext
from .metrics import intersection_union
from .obs_space import TEXT_CHARSET, TEXT_MAX_LENGTH, clean_text, observation_space  # noqa: F401 (re-exported)
from .segmenters import Prompt, Segmenter, TextSegmenter, make_segmenter, make_text_segmenter

__all__ = ["INVALID", "SegEnv"]  # INVALID lives in segenv.actions; re-exported for older imports

INITIAL_STATES = tuple(_INITIAL_STATE_REGISTRY.names())  # segenv.initial_states: one function each


@dataclass
class PendingStep:
    """A validated action waiting for the segmenter: the first half of :meth:`SegEnv.step`."""

    invalid: bool  # None / INVALID: an invalid step
    parsed: Optional[Action]
    end: Optional[str]  # "finish" / "no_object" for an end action, else None
    before: float  # IoU before the step (the reward's baseline)
    prompt: Optional[Prompt] = None  # all prompts so far plus this click / box; None: no segmenter call
    prompts_after: Optional[tuple] = None  # (points, labels, clicks, box) to store once the mask is in


class SegEnv(gym.Env):
    """Segment the object a sentence refers to by clicking.

    ## Description
    Each episode is one dataset item: an image and a referring expression. The agent clicks;
    an interactive segmenter (GrabCut by default, or a SAM-family model) turns *all* clicks so
    far, the box if any and its previous logits into a mask, exactly as in SegAgent's
    evaluation (docs/conventions.md#segmenter-feedback).

    ## Action Space
    ``action_mode="click"`` (default, unchanged since v0): ``Box(0, 1, (3,), float32)``:
    ``(x, y, p)``, ``x`` column and ``y`` row normalised to the image, a positive click when
    ``p >= 0.5``. ``action_mode="full"``: ``Box(0, 1, (4,), float32)``: ``(x, y, p, e)``;
    ``e < 0.5`` is the click ``(x, y, p)``, ``e >= 0.5`` ends the episode with ``Finish``
    (``p >= 0.5``: keep the mask) or ``NoObject`` (``p < 0.5``: the text refers to nothing here;
    the mask is emptied). That is how an RL agent reaches the two end actions: sample or learn
    the fourth component (``segenv.actions.action_to_space`` writes any typed action in this
    form). In both modes ``step`` takes every spelling (the mode only sets ``action_space``):
    the typed :class:`segenv.actions.Click`, :class:`segenv.actions.BoxPrompt` (first action
    only), :class:`segenv.actions.Finish` (also ``segenv.actions.STOP``),
    :class:`segenv.actions.NoObject`, both array forms, and the long
    ``float32[5] = (kind, x, y, x1, y1)`` with kind 0/1 = negative/positive click, 2 = box,
    3 = finish, 4 = no object. ``None`` or :data:`INVALID` is an *invalid step* (e.g. a model's
    unparsable text): mask kept, reward 0 (minus ``step_cost``), ``info["invalid"] = True``,
    and it still uses up a click. Validation is strict and complete before anything changes
    (a malformed action raises ``ValueError`` and the episode is exactly as before): coordinates
    are real numbers in ``[0, 1]``; ``Click.positive`` is a bool or 0 / 1 (not ``"false"``,
    ``"no"`` or NaN); a box has ``x0 < x1`` and ``y0 < y1``; arrays are finite, real-valued (no
    complex, bool or str) and of shape (3,), (4,) or (5,). A segmenter error during a click also
    leaves the state untouched.

    ## Observation Space
    ``Dict(image=Box(uint8, SxSx3), overlay=Box(uint8, SxSx3), mask=Box(uint8 {0,255}, SxS),
    text=Text(0..512, printable))`` with ``S = image_size``. ``overlay`` is what the policy sees:
    the image with the mask blended in ``overlay_color`` at ``overlay_alpha`` only where the mask
    is on; clicks are drawn on it only with ``draw_clicks=True`` (SegAgent draws none).

    ## Rewards
    ``IoU(after) - IoU(before)``, computed at the sample's original resolution, with the
    dataset's ignore pixels excluded (the resize to ``S`` is for observations only). An empty
    union counts IoU 1, so on a no-target item (empty ground truth) an empty mask scores 1 and
    any other mask 0 (gRefCOCO's rule); ``NoObject`` earns that change, ``Finish`` earns 0.
    Optional shaping for RL (both 0 by default): ``step_cost`` is subtracted on every step that
    uses a click (clicks, the box, invalid steps; not ``Finish`` / ``NoObject``), and
    ``finish_bonus`` is added when the agent ends the episode itself with ``Finish`` or
    ``NoObject``. With the defaults the return of an episode is its final IoU minus its initial
    IoU; in general it is that plus ``finish_bonus`` (if the agent ended it) minus
    ``step_cost * clicks``.

    ## Starting State
    A sample drawn with ``self.np_random`` (or ``options={"index": i}``); the initial mask is
    ``"empty"``, ``"box"`` (the segmenter's mask for the ground-truth box; the box then stays
    a prompt), ``"points"`` (the segmenter's mask for ``initial_points`` random pixels inside
    the ground-truth box, labelled by ground truth; they stay prompts, not counted as clicks) or
    ``"text"`` (``text_segmenter``'s answer to the expression, e.g. SAM 3's text model; its box
    stays a prompt; reset ``info`` adds ``text_score`` and ``text_instances``): one function each
    in :mod:`segenv.initial_states`.
    With ``box_step=True`` and the ``"box"`` state the box is the FIRST of the ``max_clicks``
    steps, as in SegAgent's released loop (the agent has ``max_clicks - 1`` clicks left); the
    reset ``info`` then carries ``box_step``, ``iou_before_box``, ``intersection_before_box`` and
    ``union_before_box`` (the empty mask it started from), and the rollout harness records the box
    as step 1. Otherwise the box is given before the clicks and uses none of them.

    ## Episode End
    Termination when the agent sends ``Finish`` or ``NoObject`` (``info["end_action"]`` says
    which), or when ``target_iou`` is set and reached (``"target_iou"``); truncation after
    ``max_clicks`` clicks (invalid steps count). ``Finish`` / ``NoObject`` are an episode step but
    not a click: they call no segmenter and do not use up ``max_clicks`` (SegAgent's finish answer
    is one of its T model steps; give the agent ``max_clicks = T - 1`` to match that budget
    exactly). So an episode has at most ``max_clicks`` steps, plus one for a box first action.

    ## Info
    ``iou``, ``intersection``, ``union``, ``num_clicks``, ``sample_id``, ``sample_index``,
    ``invalid``, ``end_action`` (None while running or when the budget ran out, ``"finish"``,
    ``"no_object"`` or ``"target_iou"``), ``clicks`` (normalised ``(x, y, positive)``),
    ``pred_mask`` (the current mask at original resolution), and ``gt_mask`` / ``gt_ignore``
    (original resolution; for the oracle and training only: the rollout harness strips them for
    agents that do not declare ``needs_gt``). Wall time of the last segmenter call is the
    attribute ``last_segmenter_seconds`` (not in ``info``, which must be deterministic).

    ## Arguments
    ``dataset`` (name or instance), ``split``, ``data_root``, ``dataset_kwargs``, ``segmenter``
    (name, ``"name:/path"`` or instance), ``segmenter_kwargs``, ``image_size`` (512; 448 for
    Qwen), ``max_clicks`` (7), ``target_iou`` (None), ``initial_state``, ``initial_points``, ``text_segmenter``
    (``"sam3:/path"`` or an object with ``segment(image, text)``; needed by ``initial_state="text"``),
    ``text_segmenter_kwargs`` (e.g. ``{"threshold": 0.3}``),
    ``action_mode`` (``"click"`` or ``"full"``), ``step_cost`` (0), ``finish_bonus`` (0), ``box_step`` (False),
    ``overlay_color``, ``overlay_alpha``, ``draw_clicks``, ``render_mode``.

    ## Version History
    * v0: first release; ``Finish`` / ``NoObject``, ``action_mode``, ``step_cost`` and
      ``finish_bonus`` added without changing the default action space or rewards.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 2}

    def __init__(
        self,
        dataset: "str | Dataset" = "shapes",
        split: str = "test",
        data_root: Optional[str] = None,
        dataset_kwargs: Optional[dict] = None,
        segmenter: "str | Segmenter" = "grabcut",
        segmenter_kwargs: Optional[dict] = None,
        image_size: int = 512,
        max_clicks: int = 7,
        target_iou: Optional[float] = None,
        initial_state: str = "empty",
        initial_points: int = 3,
        text_segmenter: "str | TextSegmenter | None" = None,
        text_segmenter_kwargs: Optional[dict] = None,
        action_mode: str = "click",
        step_cost: float = 0.0,
        finish_bonus: float = 0.0,
        box_step: bool = False,
        overlay_color: "str | tuple[int, int, int]" = "green",
        overlay_alpha: float = 0.5,
        draw_clicks: bool = False,
        render_mode: Optional[str] = None,
    ) -> None:
        check_env_args(render_mode=render_mode, render_modes=self.metadata["render_modes"], initial_state=initial_state,
                       text_segmenter=text_segmenter, action_mode=action_mode, step_cost=step_cost,
                       finish_bonus=finish_bonus, image_size=image_size, max_clicks=max_clicks, target_iou=target_iou,
                       box_step=box_step)
        self.dataset: Dataset = (
            make_dataset(dataset, split=split, data_root=data_root, **(dataset_kwargs or {}))
            if isinstance(dataset, str)
            else dataset
        )
        if len(self.dataset) == 0:
            raise ValueError(f"dataset {getattr(self.dataset, 'name', dataset)!r} split {split!r} is empty")
        self.segmenter: Segmenter = make_segmenter(segmenter, **(segmenter_kwargs or {}))
        self.text_segmenter: Optional[TextSegmenter] = (
            None if text_segmenter is None else make_text_segmenter(text_segmenter, **(text_segmenter_kwargs or {}))
        )
        self.image_size = int(image_size)
        self.max_clicks = int(max_clicks)
        self.target_iou = target_iou
        self.initial_state = initial_state
        self.initial_points = int(initial_points)
        self.overlay_color = R.COLORS[overlay_color] if isinstance(overlay_color, str) else tuple(overlay_color)
        self.overlay_alpha = float(overlay_alpha)
        self.draw_clicks = draw_clicks
        self.render_mode = render_mode

        self.observation_space = observation_space(self.image_size)
        self.action_mode = action_mode
        self.step_cost = float(step_cost)
        self.finish_bonus = float(finish_bonus)
        self.box_step = bool(box_step) and initial_state == "box"
        self.action_space = spaces.Box(0.0, 1.0, (3 if action_mode == "click" else 4,), np.float32)
        self._sample: Optional[Sample] = None
        self._previewed: dict = {}
        self._window: Optional[HumanWindow] = None

    # ------------------------------------------------------------------ episode state
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        options = options or {}
        index = options.get("index")
        if index is None:
            index = int(self.np_random.integers(len(self.dataset)))
        elif not -len(self.dataset) <= int(index) < len(self.dataset):
            raise ValueError(f"options['index']={index} is out of range for a dataset of {len(self.dataset)}")
        sample = self.dataset[int(index)]
        self._sample = sample
        self._index = int(index)
        h, w = sample.mask.shape
        self._image_small = R.resize_image(sample.image, self.image_size)
        self._blended = R.blend(self._image_small, self.overlay_color, self.overlay_alpha)
        self._text = clean_text(sample.text)
        self._points: list[tuple[float, float]] = []  # integer pixel (x, y) = (col, row) at original resolution, as SAM's predictor takes them
        self._labels: list[int] = []
        self._clicks: list[tuple[float, float, bool]] = []  # the agent's clicks, normalised
        self._box: Optional[np.ndarray] = None
        self._logits: Any = None
        self._num_clicks = 0
        self._end_action: Optional[str] = None
        self._previewed: dict = {}  # action -> (mask, logits) from preview(), valid until the state changes
        self.last_segmenter_seconds = 0.0
        t0 = time.perf_counter()
        self.segmenter.set_image(sample.image)
        extra: dict = {}  # reset-only info: the box step's empty start, the text answer's score
        if self.box_step:  # the empty mask the box step starts from (the harness records the step)
            self._set_mask(np.zeros((h, w), bool))
            extra = {"box_step": True, "iou_before_box": float(self._iou),
                     "intersection_before_box": int(self._inter), "union_before_box": int(self._union)}
        start = _INITIAL_STATE_REGISTRY.get(self.initial_state)(
            InitialContext(sample, self.segmenter, self.np_random, self.initial_points, self.text_segmenter))
        self._points, self._labels, self._box, self._logits = list(start.points), list(start.labels), start.box, start.logits
        self.last_segmenter_seconds = time.perf_counter() - t0
        self._set_mask(np.asarray(start.mask))
        extra.update(start.info)
        if self.box_step:
            self._num_clicks = 1  # the box used the first of the max_clicks steps
            x0, y0, x1, y1 = (float(v) for v in self._box)
            extra["box"] = (x0 / w, y0 / h, x1 / w, y1 / h)
        return self._observation(), {**self._info(invalid=False), **extra}

    def step(self, action: "Action | np.ndarray | None"):
        pending = self._prepare_step(action)
        prediction = None
        if pending.prompt is not None:
            prediction = self._previewed.get(pending.parsed)  # preview() already segmented this action
            if prediction is None:
                p = pending.prompt
                t0 = time.perf_counter()
                prediction = self.segmenter.predict(p.points, p.labels, p.box, prev_logits=p.prev_logits)
                self.last_segmenter_seconds = time.perf_counter() - t0
        return self._finish_step(pending, prediction)

    def preview(self, actions: Sequence["Action | np.ndarray"]) -> list[dict]:
        """The observation each of ``actions`` WOULD give from the current state; changes nothing.

        Why: PRM-guided tree search (paper Alg. 2, Fig. 5) scores K candidate clicks by the masks
        they produce before committing to one. All clicks (and a first box) go to the segmenter in
        ONE :meth:`~segenv.segmenters.base.Segmenter.predict_many` call on the cached image.
        ``Finish`` (and ``None`` / ``INVALID``) preview the current mask, ``NoObject`` an empty one.
        Each observation is what :meth:`step` would return (``image``, ``overlay``, ``mask``,
        ``text``) and nothing more: no IoU, no ground truth, so an agent may call it. The masks are
        remembered until the state changes, so stepping a previewed action gives exactly the
        previewed mask without a second segmenter call. A malformed action raises ``ValueError``
        (as :meth:`step` does) before the segmenter runs.
        """
        pendings = [self._prepare_step(a) for a in actions]
        asks = [i for i, pend in enumerate(pendings) if pend.prompt is not None and pend.parsed not in self._previewed]
        t0 = time.perf_counter()
        answers = self.segmenter.predict_many([pendings[i].prompt for i in asks]) if asks else []
        if len(answers) != len(asks):
            raise RuntimeError(f"predict_many returned {len(answers)} results for {len(asks)} prompts")
        self.last_segmenter_seconds = time.perf_counter() - t0
        assert self._sample is not None
        shape = self._sample.mask.shape
        for i, (mask, logits) in zip(asks, answers):
            mask = np.asarray(mask)
            if mask.shape != shape:
                raise ValueError(f"segmenter returned a mask of shape {mask.shape}, expected {shape}")
            self._previewed[pendings[i].parsed] = (mask, logits)
        out = []
        for pend in pendings:
            if pend.prompt is not None:
                small = R.resize_mask(np.asarray(self._previewed[pend.parsed][0], bool), self.image_size).view(np.uint8)
            elif isinstance(pend.parsed, NoObject):
                small = np.zeros_like(self._mask_small)
            else:
                small = self._mask_small
            clicks = pend.prompts_after[2] if pend.prompts_after is not None else None
            out.append(self._observation(small, clicks))
        return out

    # The two halves of step(). segenv.vector.SegVectorEnv calls them around ONE batched segmenter
    # call for all its sub-envs, so a vector step and a single step share every rule below.
    def _prepare_step(self, action: "Action | np.ndarray | None") -> PendingStep:
        """Validate ``action`` and say which prompts the segmenter must see; changes no episode state.

        Validation is complete here (a malformed action raises ``ValueError`` before anything changes).
        """
        if self._sample is None:
            raise RuntimeError("call reset() before step()")
        invalid = action is None or action is INVALID
        parsed = None if invalid else parse_action(action)  # validates fully before any change
        if isinstance(parsed, BoxPrompt) and (self._num_clicks > 0 or self._box is not None):
            raise ValueError("a BoxPrompt is allowed only as the first action of an episode")
        self.last_segmenter_seconds = 0.0
        pending = PendingStep(invalid=invalid, parsed=parsed, end=end_action_name(parsed), before=self._iou)
        if isinstance(parsed, (Click, BoxPrompt)):
            h, w = self._sample.mask.shape
            points, labels, clicks, box = list(self._points), list(self._labels), list(self._clicks), self._box
            if isinstance(parsed, BoxPrompt):
                box = parsed.to_pixels(h, w)
            else:
                row, col = parsed.to_pixel(h, w)
                points.append((float(col), float(row)))
                labels.append(int(parsed.positive))
                clicks.append((parsed.x, parsed.y, parsed.positive))
            pts, labs, box_arr = self._prompt_arrays(points, labels, box)
            pending.prompt = Prompt(pts, labs, box_arr, self._logits)
            pending.prompts_after = (points, labels, clicks, box)
        return pending

    def _finish_step(self, pending: PendingStep, prediction: "tuple[np.ndarray, Any] | None"):
        """Apply the segmenter's ``(mask, logits)`` for ``pending`` (None when it needed none) and
        return the step's ``(obs, reward, terminated, truncated, info)``.

        Atomic for prompts: they are stored only after the segmenter answered with a mask of the
        right shape, so an error here (e.g. a ``ValueError`` the harness turns into an invalid
        step) leaves the episode exactly as it was.
        """
        sample = self._sample
        assert sample is not None
        if pending.prompt is not None:
            if prediction is None:
                raise ValueError("this step adds a prompt: it needs the segmenter's (mask, logits)")
            mask, logits = prediction
            mask = np.asarray(mask)
            if mask.shape != sample.mask.shape:
                raise ValueError(f"segmenter returned a mask of shape {mask.shape}, expected {sample.mask.shape}")
            assert pending.prompts_after is not None
            self._points, self._labels, self._clicks, self._box = pending.prompts_after
            self._logits = logits
            self._set_mask(mask)
            self._previewed = {}  # previews were made from the old prompts
        elif isinstance(pending.parsed, NoObject):
            self._set_mask(np.zeros_like(sample.mask))
            self._previewed = {}
        end = pending.end
        # Finish changes nothing. Clicks and invalid steps use up a click; the box and end actions do not.
        if end is None and not isinstance(pending.parsed, BoxPrompt):
            self._num_clicks += 1
        reward = self._iou - pending.before + (self.finish_bonus if end is not None else -self.step_cost)
        reached = self.target_iou is not None and self._iou >= self.target_iou
        terminated = end is not None or reached
        truncated = not terminated and self._num_clicks >= self.max_clicks
        self._end_action = end or ("target_iou" if reached else None)
        if self.render_mode == "human":
            self.render()
        return self._observation(), float(reward), bool(terminated), bool(truncated), self._info(invalid=pending.invalid)

    def _prompt_arrays(self, points=None, labels=None, box=None) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """``(points float32 Nx2 pixel (x, y), labels int64 N, box float32[4] or None)``; the
        episode's own prompts when called without arguments."""
        if points is None:
            points, labels, box = self._points, self._labels, self._box
        return np.asarray(points, np.float32).reshape(-1, 2), np.asarray(labels, np.int64), box

    def _set_mask(self, mask: npt.NDArray[np.bool_]) -> None:
        sample = self._sample
        assert sample is not None
        if mask.shape != sample.mask.shape:
            raise ValueError(f"segmenter returned a mask of shape {mask.shape}, expected {sample.mask.shape}")
        self._mask = mask.astype(bool, copy=False)
        self._inter, self._union = intersection_union(self._mask, sample.mask, sample.ignore)
        self._iou = 1.0 if self._union == 0 else self._inter / self._union
        self._mask_small = R.resize_mask(self._mask, self.image_size).view(np.uint8)

    # ------------------------------------------------------------------ views
    def _observation(self, mask_small: Optional[npt.NDArray[np.uint8]] = None, clicks: Optional[list] = None) -> dict:
        """The observation of the current mask, or of ``mask_small`` (SxS, 0/1) and ``clicks`` for :meth:`preview`."""
        mask_small = self._mask_small if mask_small is None else mask_small
        overlay = R.overlay_mask(self._image_small, mask_small, blended=self._blended)
        if self.draw_clicks:
            R.draw_clicks(overlay, self._clicks if clicks is None else clicks)
        return {
            "image": self._image_small.copy(),
            "overlay": overlay,
            "mask": mask_small * np.uint8(255),
            "text": self._text,
        }

    def _info(self, invalid: bool) -> dict:
        assert self._sample is not None
        return {
            "iou": float(self._iou),
            "intersection": int(self._inter),
            "union": int(self._union),
            "num_clicks": self._num_clicks,
            "sample_id": self._sample.id,
            "sample_index": self._index,
            "invalid": bool(invalid),
            "end_action": self._end_action,
            "clicks": list(self._clicks),
            "pred_mask": self._mask.copy(),
            "gt_mask": self._sample.mask.copy(),
            **({"gt_ignore": self._sample.ignore.copy()} if self._sample.ignore is not None else {}),
        }

    @property
    def sample(self) -> Optional[Sample]:
        """The current episode's dataset item (ground truth included: not for policies)."""
        return self._sample

    @property
    def current_mask(self) -> npt.NDArray[np.bool_]:
        """The current mask at the sample's original resolution (a copy)."""
        return self._mask.copy()

    def render(self) -> Optional[npt.NDArray[np.uint8]]:
        """For people: the overlay with clicks (red positive, blue negative) and the box drawn."""
        if self._sample is None or self.render_mode is None:
            return None
        frame = R.overlay_mask(self._image_small, self._mask_small, blended=self._blended)
        R.draw_clicks(frame, self._clicks)
        if self._box is not None:
            h, w = self._sample.mask.shape
            x0, y0, x1, y1 = self._box
            R.draw_box(frame, (x0 / w, y0 / h, x1 / w, y1 / h))
        if self.render_mode == "rgb_array":
            return frame
        self._show(frame)
        return None

    def _show(self, frame: npt.NDArray[np.uint8]) -> None:
        if self._window is None:
            self._window = HumanWindow(f"SegEnv: {self._text}", fps=self.metadata["render_fps"])
        self._window.show(frame)

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None
