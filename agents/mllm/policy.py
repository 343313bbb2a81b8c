"""The MLLM policy: any LOCAL image-text-to-text checkpoint acting in segenv.

Every step is a fresh single-turn chat (no action history: docs/conventions.md#overlay): the observation's
``overlay`` (image + current mask, no click markers) as the image, the prompt of
:func:`agents.mllm.prompt.build_prompt` with the caption, and the answer parsed by
:func:`agents.mllm.prompt.parse_action_text`. Unparsable text gives ``None`` (the rollout harness
records an invalid step); the text is always kept in ``last_output``.

The coordinate format comes from :attr:`MLLMPolicyConfig.action_format`, else from the checkpoint's
config (``segagent_coord_format``, ``segagent_coord_order``, ``segagent_loc_grid``,
``segagent_iou_line``; the tiny pointer model sets ``"loc"``), else decimals in (x, y) order.
The released SegAgent-Qwen needs ``ActionFormat("int1000", "yx")`` and ``prompt_style="qwen"``.

Models load with ``AutoProcessor`` + ``AutoModelForImageTextToText`` from a local folder only;
``agents.mllm.tiny`` (when present) is imported first because it registers its custom model class
with the Auto classes. CUDA + bf16 when available, CPU + fp32 otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from segenv.actions import BoxPrompt, Click, end_action_name
from segenv.device import resolve_device_dtype as _resolve_device_dtype

from .iou_readout import _iou_readout_processor_class, check_iou_readout
from .no_object import _no_object_processor_class, _no_object_token_id, check_no_object_bias  # noqa: F401 (re-exported)
from .proposals import PROPOSAL_METHODS, beam_proposals
from .prompt import PROMPT_STYLES, ActionFormat, ParsedAction, build_prompt, parse_action_text

log = logging.getLogger(__name__)


class LocalCheckpointError(FileNotFoundError):
    """A model path that is not a usable local checkpoint folder."""


def register_custom_models() -> bool:
    """Import ``agents.mllm.tiny`` if it exists (it registers its classes with the Auto classes).

    Returns whether it was imported. A missing module is normal; a broken one is logged, so that
    stock checkpoints still load.
    """
    try:
        import agents.mllm.tiny  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "agents.mllm.tiny":
            return False
        log.warning("agents.mllm.tiny could not be imported (%s); custom tiny models will not load", exc)
        return False
    except Exception as exc:  # a bug there must not stop stock checkpoints from loading
        log.warning("agents.mllm.tiny failed to import (%s: %s); custom tiny models will not load", type(exc).__name__, exc)
        return False
    return True


def check_local_checkpoint(path: "str | Path") -> Path:
    """``path`` as a folder holding ``config.json``, or :class:`LocalCheckpointError` saying what to do."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise LocalCheckpointError(
            f"model path {str(path)!r} is not an existing local folder. segagent loads local checkpoint "
            "folders only (no hub downloads): download the checkpoint elsewhere (e.g. "
            "`hf download <repo-id> --local-dir <folder>`) and pass that folder's path."
        )
    if not (p / "config.json").is_file():
        raise LocalCheckpointError(
            f"{p} has no config.json: it is not a transformers checkpoint folder (expected config.json, "
            "weights (*.safetensors) and the processor/tokenizer files saved by save_pretrained)."
        )
    return p


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, Any]:
    """``("cuda", bfloat16)`` when CUDA is available, ``("cpu", float32)`` otherwise; explicit values win
    (:func:`segenv.device.resolve_device_dtype`, the device as a string)."""
    torch_device, torch_dtype = _resolve_device_dtype(device, dtype)
    return str(torch_device), torch_dtype


def load_model_and_processor(path: "str | Path", device: str = "auto", dtype: str = "auto"):
    """``(model, processor)`` from a local checkpoint folder, model in eval mode on ``device``."""
    p = check_local_checkpoint(path)
    register_custom_models()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device, torch_dtype = resolve_device_dtype(device, dtype)
    try:
        processor = AutoProcessor.from_pretrained(p, local_files_only=True)
    except ImportError as exc:  # e.g. Qwen-VL processors need torchvision
        raise ImportError(f"the processor of {p} needs a missing package: {exc}") from exc
    model = AutoModelForImageTextToText.from_pretrained(p, dtype=torch_dtype, local_files_only=True)
    model.to(device)
    model.eval()
    return model, processor


@dataclass
class MLLMPolicyConfig:
    """Arguments of :class:`MLLMPolicy`.

    Attributes:
        model_path: a local checkpoint folder (config.json + weights + processor files).
        prompt_style: ``"llava"`` (paper Fig. 6), ``"qwen"`` or ``"short"`` (caption only); None = the checkpoint's
            ``segagent_prompt_style`` (set by :mod:`agents.training.sft`) or ``"llava"``.
        action_format: coordinate format; None = from the checkpoint's config, else the default.
        max_new_tokens: generation budget per answer.
        do_sample: sample instead of greedy decoding (greedy is SegAgent's default).
        temperature: sampling temperature (for ``do_sample`` and for :meth:`MLLMPolicy.propose`).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on CPU), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        overlay_color: the colour word used in the prompt (match the env's ``overlay_color``).
        max_propose_rounds: extra ``generate`` calls :meth:`MLLMPolicy.propose` may make to top up.
        overlay_format: ``"png"`` (the observation's pixels as they are) or ``"jpeg"`` (the overlay
            saved as a JPEG at Pillow's default quality and read back, as SegAgent's released loop
            hands its model the overlay; there the blend is at the image's full resolution, here
            at the observation size: set the env's ``image_size`` to approach it).
        allow_end: the model may answer ``Finish`` / ``No Object Found``. False bans those
            answers in decoding (``bad_words_ids``: the model clicks every step of its budget), to
            compare learned stopping with a fixed budget.
        no_object_bias: a decision threshold for ``No Object Found`` (issue #21), in logit units:
            added to the score of the first token of ``No Object Found`` wherever an action may
            begin (:func:`agents.mllm.prompt.action_may_begin`: after the ``Current IOU`` line, or
            first when the format has none), before any temperature. Greedy decoding then answers
            ``No Object Found`` exactly where :meth:`MLLMPolicy.no_object_margin` ``+ bias > 0``,
            so the bias can be calibrated on a val split without retraining. 0.0 (the default)
            adds no logits processor at all: the outputs are those of the model as trained.
        iou_readout: how the ``Current IOU`` number is written (:mod:`agents.mllm.iou_readout`):
            ``"greedy"`` (the default, the top bin, as SegAgent decodes) or the ``"median"`` /
            ``"mean"`` of the model's distribution over the value tokens; the action is decoded
            after that number. Needs one token per IoU value (the tiny model); beam proposals
            (:mod:`agents.mllm.proposals`) keep the greedy line.
    """

    model_path: str
    prompt_style: Optional[str] = None
    action_format: Optional[ActionFormat] = None
    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    device: str = "auto"
    dtype: str = "auto"
    overlay_color: str = "green"
    max_propose_rounds: int = 3
    allow_end: bool = True
    overlay_format: str = "png"
    no_object_bias: float = 0.0
    iou_readout: str = "greedy"

    def __post_init__(self) -> None:
        self.no_object_bias = check_no_object_bias(self.no_object_bias)
        self.iou_readout = check_iou_readout(self.iou_readout)
        if self.overlay_format not in ("png", "jpeg"):
            raise ValueError(f"overlay_format must be 'png' or 'jpeg', got {self.overlay_format!r}")
        if self.prompt_style is not None and self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES} or None, got {self.prompt_style!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class MLLMPolicy:
    """An image-text-to-text model as a segenv agent (``reset`` / ``act``; never reads the GT).

    Attributes after each call: ``last_output`` (the generated text), ``last_parsed``
    (:class:`ParsedAction`), ``last_iou`` (the model's predicted IoU of the current mask, a
    fraction, when it writes the ``Current IOU`` line), ``last_outputs`` (all texts of the last
    :meth:`propose`).
    """

    needs_gt = False

    def __init__(self, config: "MLLMPolicyConfig | str", model: Any = None, processor: Any = None) -> None:
        if isinstance(config, (str, Path)):
            config = MLLMPolicyConfig(model_path=str(config))
        self.config = config
        if model is None or processor is None:
            model, processor = load_model_and_processor(config.model_path, config.device, config.dtype)
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        mc = model.config
        self.action_format = config.action_format or ActionFormat.from_model_config(mc)
        self.prompt_style = config.prompt_style or getattr(mc, "segagent_prompt_style", None) or "llava"
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self._eos_ids = self._collect_eos_ids()
        self._pad_id = self.tokenizer.pad_token_id
        if self._pad_id is None:
            self._pad_id = next(iter(self._eos_ids), None)
        self._banned = None if config.allow_end else self._end_answer_ids()
        # resolved now so that a tokenizer that cannot write the answer fails at construction
        self._no_object_id = _no_object_token_id(self.tokenizer) if config.no_object_bias != 0.0 else None
        self._iou_value_tokens = self._check_iou_readout()
        self.last_output: Optional[str] = None
        self.last_parsed: Optional[ParsedAction] = None
        self.last_iou: Optional[float] = None
        self.last_outputs: list[str] = []

    # ------------------------------------------------------------------ agent protocol
    def reset(self, obs: dict, info: dict) -> None:
        """Nothing to remember: each step is a fresh single-turn prompt."""
        self.last_output, self.last_parsed, self.last_iou = None, None, None

    def act(self, obs: dict, info: dict) -> "Click | BoxPrompt | None":
        """One answer (greedy unless ``do_sample``); None when it does not parse."""
        parsed = self.generate(obs, 1, do_sample=self.config.do_sample)[0]
        self.last_parsed = parsed
        self.last_output = parsed.text
        self.last_iou = parsed.iou
        if not parsed.ok:
            log.debug("unparsable answer %r: %s", parsed.text, parsed.error)
        return parsed.action

    def propose(self, obs: dict, k: int, include_invalid: bool = False, method: str = "sample",
                clicks_only: bool = False) -> list[ParsedAction]:
        """Up to ``k`` DISTINCT candidate actions for this observation (for tree search).

        ``method="sample"``: ``k`` answers come from ONE ``generate`` call
        (``num_return_sequences=k``, multinomial sampling at ``temperature``; ``k == 1`` with
        greedy decoding stays greedy). Duplicates and unparsable answers are dropped; up to
        ``max_propose_rounds`` extra calls top the list up. ``method="beam"``: the ``k`` most
        likely actions after the greedy IoU line, by beam search (deterministic;
        :mod:`agents.mllm.proposals`). With ``include_invalid`` distinct unparsable answers fill
        the remaining places (last). ``clicks_only``: no ``Finish`` / ``No Object Found`` among
        the candidates (tree search's: it decides stopping itself); beams ban them in decoding,
        samples drop them.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if method not in PROPOSAL_METHODS:
            raise ValueError(f"method must be one of {PROPOSAL_METHODS}, got {method!r}")
        if method == "beam":
            return beam_proposals(self, obs, k, include_invalid, clicks_only=clicks_only)
        self.last_outputs = []
        if k == 1 and not self.config.do_sample:
            found = self.generate(obs, 1, do_sample=False)
            self.last_outputs = [p.text for p in found]
            return [p for p in found if p.ok or include_invalid]
        valid: dict[tuple, ParsedAction] = {}
        invalid: dict[str, ParsedAction] = {}
        want = k
        for _ in range(1 + max(0, self.config.max_propose_rounds)):
            for parsed in self.generate(obs, want, do_sample=True):
                self.last_outputs.append(parsed.text)
                if parsed.ok and not (clicks_only and end_action_name(parsed.action) is not None):
                    valid.setdefault(parsed.key(), parsed)
                elif not parsed.ok:
                    invalid.setdefault(parsed.text, parsed)
            if len(valid) >= k:
                break
            want = k - len(valid)
        out = list(valid.values())[:k]
        if include_invalid:
            out += list(invalid.values())[: k - len(out)]
        return out

    # ------------------------------------------------------------------ model calls
    def messages(self, caption: str) -> list[dict]:
        """The chat for one step (the image goes where ``{"type": "image"}`` is)."""
        system, user = build_prompt(caption, self.prompt_style, color=self.config.overlay_color)
        msgs: list[dict] = []
        if system is not None:
            msgs.append({"role": "system", "content": [{"type": "text", "text": system}]})
        msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]})
        return msgs

    def overlay_image(self, obs: dict) -> Any:
        """The observation's overlay as the PIL image the model sees (``overlay_format``)."""
        import io

        from PIL import Image

        image = Image.fromarray(np.asarray(obs["overlay"], dtype=np.uint8)).convert("RGB")
        if self.config.overlay_format == "jpeg":
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG")  # Pillow's default quality, as the released loop saves it
            buffer.seek(0)
            image = Image.open(buffer).convert("RGB")
        return image

    def build_inputs(self, obs: dict) -> dict:
        """Processor tensors for one observation, on the model's device (floats in its dtype)."""
        image = self.overlay_image(obs)
        text = self.processor.apply_chat_template(self.messages(str(obs["text"])), add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=[[image]], return_tensors="pt")
        return {
            k: (v.to(self.device, dtype=self.dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in inputs.items()
            if hasattr(v, "to")
        }

    def generate(self, obs: dict, n: int = 1, do_sample: Optional[bool] = None) -> list[ParsedAction]:
        """``n`` answers from one ``generate`` call, parsed (the text is in each ``.text``)."""
        import torch

        do_sample = self.config.do_sample if do_sample is None else do_sample
        inputs = self.build_inputs(obs)
        kwargs = self._generate_kwargs(n, do_sample)
        processors = self._iou_processors(inputs)
        if self._no_object_id is not None:
            processors.append(self._no_object_processor(inputs, self.config.no_object_bias))
        if processors:
            kwargs["logits_processor"] = processors
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        return [parse_action_text(self.decode(row[prompt_len:]), self.action_format) for row in out]

    def no_object_margin(self, obs: dict) -> float:
        """How far the greedy answer is from ``No Object Found`` (issue #21's threshold), in logits.

        At the first position of the greedy answer where an action may begin (after the ``Current
        IOU`` line), the score of ``No Object Found``'s first token minus the best other score
        (equal to the difference of their log-probabilities). With ``no_object_bias = b`` greedy
        decoding answers ``No Object Found`` iff ``margin + b > 0``: the answer tokens before that
        position are not biased, so they are the same. Decoding stops there (for the tiny model
        two forwards). NaN when the answer ends before an action may begin.
        """
        import torch
        from transformers import StoppingCriteria

        inputs = self.build_inputs(obs)
        processor = self._no_object_processor(inputs, 0.0, _no_object_token_id(self.tokenizer))

        class _Recorded(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = [m is not None for m in processor.margins] or [False] * input_ids.shape[0]
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        kwargs = self._generate_kwargs(1, False)
        with torch.inference_mode():
            self.model.generate(**inputs, **kwargs, logits_processor=[*self._iou_processors(inputs), processor],
                                stopping_criteria=[_Recorded()])
        margin = processor.margins[0] if processor.margins else None
        return float("nan") if margin is None else margin

    def _check_iou_readout(self) -> Optional[dict[int, int]]:
        """The value tokens (id -> IoU) for ``iou_readout``, None for ``"greedy"``; a clear error
        where the answer has no IoU line or the tokenizer no token per value."""
        if self.config.iou_readout == "greedy":
            return None
        if not self.action_format.iou_line:
            raise ValueError(f"iou_readout={self.config.iou_readout!r} needs answers with a 'Current IOU' line; "
                             "this action format has none (use iou_readout='greedy')")
        from ..prm import iou_value_tokens

        return iou_value_tokens(self.tokenizer)

    def _iou_processors(self, inputs: dict) -> list:
        """``[IouReadout]`` for a non-greedy ``iou_readout``, else ``[]``."""
        if self._iou_value_tokens is None:
            return []
        return [_iou_readout_processor_class()(self._iou_value_tokens, self.config.iou_readout,
                                               inputs["input_ids"].shape[1])]

    def _no_object_processor(self, inputs: dict, bias: float, token_id: Optional[int] = None) -> Any:
        token_id = self._no_object_id if token_id is None else token_id
        return _no_object_processor_class()(token_id, bias, inputs["input_ids"].shape[1], self._decode_unstripped,
                                            bool(self.action_format.iou_line))

    def _generate_kwargs(self, n: int, do_sample: bool) -> dict[str, Any]:
        """The ``generate`` arguments of every answer (budget, decoding, padding, banned answers)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.config.max_new_tokens,
            "do_sample": do_sample,
            "num_return_sequences": n,
            "pad_token_id": self._pad_id,
        }
        if self._banned:
            kwargs["bad_words_ids"] = self._banned
        if do_sample:
            kwargs["temperature"] = self.config.temperature
        else:  # silence sampling defaults a checkpoint's generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def decode(self, ids: Any) -> str:
        """New token ids -> text: cut at the first EOS, drop padding, keep other special tokens
        (``<loc_k>`` grid tokens may be special)."""
        return self._decode_unstripped(ids).strip()

    def _decode_unstripped(self, ids: Any) -> str:
        """:meth:`decode` keeping surrounding whitespace (the newline that ends the IoU line)."""
        ids = [int(t) for t in ids]
        for i, t in enumerate(ids):
            if t in self._eos_ids:
                ids = ids[:i]
                break
        ids = [t for t in ids if t != self._pad_id]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _end_answer_ids(self) -> list[list[int]]:
        """Token sequences of the end answers (``Finish``, ``No Object Found``, with and without a
        leading space), for ``generate(bad_words_ids=...)``."""
        from .prompt import FINISH_TEXT, NO_OBJECT_TEXT

        seqs: list[list[int]] = []
        for text in (FINISH_TEXT, NO_OBJECT_TEXT):
            for variant in (text, " " + text):
                ids = [int(t) for t in self.tokenizer(variant, add_special_tokens=False)["input_ids"]]
                unk = getattr(self.tokenizer, "unk_token_id", None)
                if ids and unk not in ids and ids not in seqs:
                    seqs.append(ids)
        return seqs

    def _collect_eos_ids(self) -> set[int]:
        ids: set[int] = set()
        gc = getattr(self.model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None) if gc is not None else None
        if isinstance(eos, int):
            ids.add(eos)
        elif eos is not None:
            ids.update(int(e) for e in eos)
        if getattr(self.tokenizer, "eos_token_id", None) is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids


__all__ = [
    "LocalCheckpointError",
    "check_no_object_bias",
    "MLLMPolicy",
    "MLLMPolicyConfig",
    "check_local_checkpoint",
    "load_model_and_processor",
    "register_custom_models",
    "resolve_device_dtype",
]
