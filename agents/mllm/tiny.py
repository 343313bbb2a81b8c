"""A tiny click-pointing VLM built from config (the CPU default for SegAgent's MLLM policy).

Why this shape (see docs/tiny_vlm.md): stock
LLaVA/Idefics3 layouts trained from scratch on this CPU learn the answer template and then emit
one constant answer; a *pointer readout* breaks that plateau. So:

* **vision**: a small CNN (GroupNorm + GELU) on the 112 px image: stride-8 features (14x14) for
  the pointer keys and stride-16 features (7x7 = 49 image tokens) for the transformer; with
  ``loc_grid`` four times the image-token side (28 at 112 px) the keys are stride-4 cells and the
  stride-4 features join them (a finer pointer at the same input size: thin false-positive
  slivers are narrower than a stride-8 cell; docs/benchmarks.md, "The pointer grid's ceiling");
* **language**: a word-level tokenizer; the chat template puts the caption *before* the image
  tokens, and the transformer uses prefix-LM attention (bidirectional over the prompt, causal over
  the answer), so image tokens are contextualised by the referring expression;
* **pointer readout**: the logits of the location tokens ``<loc_0> .. <loc_{G*G-1}>`` (row-major on
  a G x G grid, G = 14 by default) are a scaled dot product between a linear map of the hidden
  state at the answer position and per-cell keys (stride-8 CNN features + the upsampled final
  hidden states of the image tokens + a 2-D position embedding, mixed by a 3x3 conv). These
  logits *replace* the loc rows of the LM logits inside ``forward``, so ``forward(labels=...)``'s
  ordinary causal-LM loss trains the pointer. Train with that loss (``agents.training.sft``'s
  ``loss_from="model"``, chosen automatically for this class): trl's default fused LM head
  multiplies backbone states by one fixed output matrix, which a per-image pointer is not;
* the answer is ``Positive point: <loc_k>`` / ``Negative point: <loc_k>``; each of
  ``"Positive point: "`` and ``"Negative point: "`` is one token, so an answer is 3 tokens with EOS;
* **IoU line** (``iou_token_offset >= 0``): the answer starts with SegAgent's PRM line
  ``Current IOU: NN`` (``NN`` in 0..100), one token per value, so the LM logits of those 101
  tokens at the answer's first position are a binned IoU head. Its loss is the cross-entropy
  against a Gaussian over the bins around the true value (``iou_label_sigma`` bins): the bins are
  ordered, so a prediction one bin off costs little and the argmax lands near the true IoU. The end
  answers ``Finish`` / ``No Object Found`` are one token each.

Importing this module (``import agents`` does, when torch and transformers are installed)
registers the config and model with ``AutoConfig`` / ``AutoModelForImageTextToText`` (and the
stock ``LlavaProcessor`` with ``AutoProcessor``): see :func:`register_auto_classes` and
``docs/tiny_vlm.md``. Answers are parsed by :func:`agents.mllm.prompt.parse_action_text` with
``ActionFormat("loc", loc_grid=G)`` (the checkpoint declares it: ``segagent_coord_format="loc"``).
``agents.mllm.tiny_build.build_tiny_vlm(out_dir, **cfg)`` builds one from config and saves model + processor.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

MODEL_TYPE = "segagent_tiny"


# ----------------------------------------------------------------------------- config
class TinySegConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 256,
        hidden_size: int = 128,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 4,
        intermediate_size: int = 384,
        max_position_embeddings: int = 160,
        image_size: int = 112,
        patch_size: int = 16,
        cnn_channels: tuple = (16, 32, 64),
        pointer_dim: int = 96,
        loc_grid: int = 14,
        loc_token_offset: int = 0,
        image_token_id: int = 4,
        ans_token_id: int = 5,
        prefix_lm: bool = True,
        film: bool = True,
        dropout: float = 0.0,
        initializer_range: float = 0.02,
        pad_token_id: int = 3,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        segagent_coord_format: str = "loc",
        segagent_loc_grid: Optional[int] = None,
        segagent_prompt_style: str = "short",
        segagent_iou_line: bool = False,
        iou_token_offset: int = -1,
        iou_bins: int = 101,
        iou_label_sigma: float = 2.0,
        tie_word_embeddings: bool = True,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.image_size = image_size
        self.patch_size = patch_size
        self.cnn_channels = list(cnn_channels)
        self.pointer_dim = pointer_dim
        self.loc_grid = loc_grid
        self.loc_token_offset = loc_token_offset
        self.image_token_id = image_token_id
        self.ans_token_id = ans_token_id
        self.prefix_lm = prefix_lm
        self.film = film
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.segagent_coord_format = segagent_coord_format
        self.segagent_loc_grid = loc_grid if segagent_loc_grid is None else segagent_loc_grid
        self.segagent_prompt_style = segagent_prompt_style
        self.segagent_iou_line = segagent_iou_line  # answers start with the "Current IOU" token
        self.iou_token_offset = iou_token_offset  # id of "Current IOU: 0\n"; -1: no IoU tokens
        self.iou_bins = iou_bins
        self.iou_label_sigma = iou_label_sigma
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def num_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def pointer_stride(self) -> int:
        """Pixels (of the model's input) per pointer cell: 8 (``loc_grid`` = 2x the image-token side)
        or 4 (4x); any other grid is refused when the model is built."""
        return self.image_size // self.loc_grid


# ----------------------------------------------------------------------------- model
def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(4, cout), nn.GELU())


class TinyVision(nn.Module):
    """112 px -> stride-8 map (C8 x 14 x 14) and stride-16 map (D x 7 x 7), optionally FiLM-ed by the text."""

    def __init__(self, cfg: TinySegConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.cnn_channels
        d = cfg.hidden_size
        self.s2 = _conv(3, c1, 2)  # /2
        self.s4 = _conv(c1, c2, 2)  # /4
        self.s8a = _conv(c2, c3, 2)  # /8
        self.s8b = _conv(c3, c3, 1)
        self.s16 = nn.Conv2d(c3, d, 3, 2, 1)  # /16
        self.film_sizes = [c2, c3, c3]

    @staticmethod
    def _film(x: torch.Tensor, gb: Optional[torch.Tensor]) -> torch.Tensor:
        if gb is None:
            return x
        g, b = gb.chunk(2, dim=-1)
        return x * (1 + g[:, :, None, None]) + b[:, :, None, None]

    def forward(self, x: torch.Tensor, film: Optional[list] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(f4, f8, f16)``: (B, C2, S/4, S/4), (B, C3, S/8, S/8), (B, D, S/16, S/16) for an S px image."""
        film = film or [None, None, None]
        f4 = self._film(self.s4(self.s2(x)), film[0])
        x = self._film(self.s8a(f4), film[1])
        f8 = self._film(self.s8b(x), film[2])
        return f4, f8, self.s16(f8)


class Block(nn.Module):
    def __init__(self, cfg: TinySegConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.h = cfg.num_attention_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.intermediate_size), nn.GELU(), nn.Linear(cfg.intermediate_size, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class TinySegPreTrainedModel(PreTrainedModel):
    config_class = TinySegConfig
    base_model_prefix = "tiny"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _no_split_modules = ["Block"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class TinySegForClicks(TinySegPreTrainedModel, GenerationMixin):
    """Word tokens + CNN image tokens -> prefix-LM transformer -> LM logits with a pointer readout."""

    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}
    # ``forward``'s loss is a mean over answer tokens (it ignores ``num_items_in_batch``): tells
    # transformers' Trainer to average over gradient-accumulation steps itself
    accepts_loss_kwargs = False

    def __init__(self, config: TinySegConfig) -> None:
        super().__init__(config)
        d, g = config.hidden_size, config.loc_grid
        n_img = config.num_image_tokens
        side = config.image_size // config.patch_size
        if g not in (2 * side, 4 * side):
            raise ValueError(f"loc_grid ({g}) must be 2x (stride-8 keys) or 4x (stride-4 keys) the image-token "
                             f"side ({side} for image_size {config.image_size}): pick loc_grid {2 * side} or {4 * side}")
        self.vision = TinyVision(config)
        self.img_pos = nn.Parameter(torch.zeros(1, n_img, d))
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.embed_pos = nn.Embedding(config.max_position_embeddings, d)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        p = config.pointer_dim
        self.key8 = nn.Conv2d(config.cnn_channels[-1], p, 1)
        if g == 4 * side:  # stride-4 keys; zero-initialised, so a warm start from a stride-8 grid
            self.key4 = nn.Conv2d(config.cnn_channels[1], p, 1)  # begins as that grid upsampled
        self.key16 = nn.Linear(d, p)
        self.key_pos = nn.Parameter(torch.zeros(1, p, g, g))
        self.key_mix = nn.Sequential(nn.GELU(), nn.Conv2d(p, p, 3, 1, 1))
        self.query = nn.Linear(d, p)
        self.pointer_scale = nn.Parameter(torch.tensor(1.0))
        if config.film:  # text -> FiLM of the CNN stages (attention pooling over caption tokens)
            self.film_pool = nn.Linear(d, 1)
            self.film_in = nn.Sequential(nn.Linear(d, d), nn.GELU())
            self.film_out = nn.Linear(d, 2 * sum(self.vision.film_sizes))
        self.post_init()
        with torch.no_grad():
            nn.init.normal_(self.img_pos, 0.0, 0.02)
            nn.init.normal_(self.key_pos, 0.0, 0.02)
            if hasattr(self, "key4"):
                nn.init.zeros_(self.key4.weight)
                nn.init.zeros_(self.key4.bias)
            if config.film:
                nn.init.zeros_(self.film_out.weight)
                nn.init.zeros_(self.film_out.bias)

    def _film_params(self, input_ids: torch.Tensor, x: torch.Tensor, attention_mask: torch.Tensor) -> Optional[list]:
        """Per-sample FiLM (gamma, beta) for the CNN stages from the caption tokens (those before <image>)."""
        if not self.config.film:
            return None
        cfg = self.config
        is_img = input_ids == cfg.image_token_id
        t = input_ids.shape[1]
        ar = torch.arange(t, device=input_ids.device)
        first_img = torch.where(is_img.any(1), is_img.float().argmax(1), torch.full_like(input_ids[:, 0], t))
        text = (ar[None] < first_img[:, None]) & attention_mask.bool() & (input_ids != cfg.bos_token_id)
        text = text & (input_ids != cfg.pad_token_id)
        w = self.film_pool(x).squeeze(-1).masked_fill(~text, -1e4)
        w = torch.softmax(w, dim=1) * text.any(1, keepdim=True)
        pooled = torch.einsum("bt,btd->bd", w, self.film_in(x))
        out = self.film_out(pooled)
        return list(out.split([2 * c for c in self.vision.film_sizes], dim=-1))

    # -- embeddings API used by transformers / trl
    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    # -- pieces
    def _attention_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        b, t = input_ids.shape
        dev = input_ids.device
        ar = torch.arange(t, device=dev)
        allowed = ar[None, :] <= ar[:, None]  # causal (t, t)
        allowed = allowed[None].expand(b, t, t)
        if self.config.prefix_lm:
            is_ans = input_ids == self.config.ans_token_id
            # prompt = everything up to and including the first <ans>; none -> plain causal
            first = torch.where(is_ans.any(1), is_ans.float().argmax(1) + 1, torch.zeros(b, dtype=torch.long, device=dev))
            in_prefix = ar[None, :] < first[:, None]  # (b, t)
            allowed = allowed | (in_prefix[:, :, None] & in_prefix[:, None, :])
        allowed = allowed & attention_mask[:, None, :].bool()
        allowed = allowed | torch.eye(t, dtype=torch.bool, device=dev)[None]  # no empty rows (padding)
        return allowed[:, None]  # (b, 1, t, t)

    def pointer_logits(self, hidden: torch.Tensor, f8: torch.Tensor, img_hidden: torch.Tensor,
                       f4: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, G*G) scaled dot products of the query at every position with the cell keys.

        ``f8``: (B, C3, S/8, S/8) and ``img_hidden``: (B, N, D); ``f4`` (B, C2, S/4, S/4) is needed
        on a stride-4 grid (``loc_grid`` = 4x the image-token side)."""
        b = hidden.shape[0]
        g = self.config.loc_grid
        side = int(math.isqrt(img_hidden.shape[1]))
        k16 = self.key16(img_hidden).transpose(1, 2).reshape(b, -1, side, side)
        keys = F.interpolate(k16, size=(g, g), mode="nearest")
        k8 = self.key8(f8)
        keys = keys + (k8 if k8.shape[-1] == g else F.interpolate(k8, size=(g, g), mode="nearest")) + self.key_pos
        if hasattr(self, "key4"):
            if f4 is None:
                raise ValueError(f"a {g}x{g} pointer grid has stride-4 keys: pass the stride-4 features f4")
            keys = keys + self.key4(f4)
        keys = self.key_mix(keys) + keys
        keys = keys.flatten(2)  # (B, P, G*G)
        q = self.query(hidden)  # (B, T, P)
        return torch.bmm(q, keys) * (self.pointer_scale / math.sqrt(q.shape[-1]))

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        pixel_values: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        logits_to_keep: int = 0,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        cfg = self.config
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pos = (attention_mask.long().cumsum(1) - 1).clamp(min=0, max=cfg.max_position_embeddings - 1)
        x = self.embed_tokens(input_ids) + self.embed_pos(pos)
        img_pos = input_ids == cfg.image_token_id
        n_img = cfg.num_image_tokens
        f4 = f8 = None
        if pixel_values is not None:
            pixel_values = pixel_values.to(x.dtype)
            if pixel_values.shape[0] != b:
                raise ValueError(f"expected one image per sequence, got {pixel_values.shape[0]} images for {b} sequences")
            f4, f8, f16 = self.vision(pixel_values, self._film_params(input_ids, x, attention_mask))
            img_tok = f16.flatten(2).transpose(1, 2) + self.img_pos  # (B, N, D)
            counts = img_pos.sum(1)
            if not bool((counts == n_img).all()):
                raise ValueError(f"every sequence needs exactly {n_img} <image> tokens, got {counts.tolist()}")
            x = x.masked_scatter(img_pos[..., None].expand_as(x), img_tok.reshape(-1, x.shape[-1]).to(x.dtype))
        mask = self._attention_mask(input_ids, attention_mask)
        for blk in self.blocks:
            x = blk(x, mask)
        h = self.norm(x)
        logits = self.lm_head(h)
        g2 = cfg.loc_grid ** 2
        off = cfg.loc_token_offset
        if f8 is not None:
            img_h = h[img_pos].view(b, n_img, -1)
            ptr = self.pointer_logits(h, f8, img_h, f4)
            logits = torch.cat([logits[..., :off], ptr.to(logits.dtype), logits[..., off + g2:]], dim=-1)
        else:  # no image: location tokens cannot be chosen
            logits[..., off:off + g2] = torch.finfo(logits.dtype).min
        loss = None
        if labels is not None:
            loss = self.answer_loss(logits[:, :-1], labels[:, 1:])
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def answer_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over answer tokens (``labels != -100``); IoU tokens against a Gaussian
        over the IoU bins (the class docstring), every other token against its one-hot label.

        ``logits``: (B, T, V) predicting ``labels`` (B, T) (already shifted).
        """
        cfg = self.config
        logp = F.log_softmax(logits.float().reshape(-1, logits.shape[-1]), dim=-1)
        flat = labels.reshape(-1)
        keep = flat != -100
        if not bool(keep.any()):
            return logits.sum() * 0.0
        logp, flat = logp[keep], flat[keep]
        nll = -logp.gather(1, flat[:, None]).squeeze(1)
        off, n = int(cfg.iou_token_offset), int(cfg.iou_bins)
        if off >= 0 and cfg.iou_label_sigma > 0:
            is_iou = (flat >= off) & (flat < off + n)
            if bool(is_iou.any()):
                bins = torch.arange(n, device=flat.device, dtype=torch.float32)
                centre = (flat[is_iou] - off).float()[:, None]
                soft = torch.exp(-0.5 * ((bins[None] - centre) / cfg.iou_label_sigma) ** 2)
                soft = soft / soft.sum(1, keepdim=True)
                nll = nll.clone()
                nll[is_iou] = -(soft * logp[is_iou, off:off + n]).sum(1)
        return nll.mean()

    # -- generation: no KV cache (sequences are ~60 tokens); recompute the whole prefix each step
    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, pixel_values=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values}

    def _supports_default_dynamic_cache(self) -> bool:  # noqa: D401 (transformers hook)
        return False


def register_auto_classes() -> None:
    """Register the tiny VLM with transformers' Auto classes (idempotent; runs when this module is imported).

    After it, ``AutoConfig`` / ``AutoModelForImageTextToText`` / ``AutoProcessor.from_pretrained(folder)``
    load a saved tiny checkpoint like any stock one. The processor is a stock ``LlavaProcessor``
    (named in the folder's ``processor_config.json``); registering it for :class:`TinySegConfig`
    also serves ``AutoProcessor``'s fallback through the model config.
    """
    from transformers import AutoProcessor, LlavaProcessor

    AutoConfig.register(MODEL_TYPE, TinySegConfig, exist_ok=True)
    AutoModelForImageTextToText.register(TinySegConfig, TinySegForClicks, exist_ok=True)
    AutoProcessor.register(TinySegConfig, LlavaProcessor, exist_ok=True)


register_auto_classes()

__all__ = ["MODEL_TYPE", "TinySegConfig", "TinySegForClicks", "register_auto_classes"]
