"""The tiny pointer VLM's word-level tokenizer, its stock ``LlavaProcessor`` and the from-config builder.

``build_tiny_vlm(out_dir, **cfg)`` builds processor + randomly initialised
:class:`agents.mllm.tiny.TinySegForClicks` and saves both (what ``save_pretrained`` writes, so
``AutoProcessor`` / ``AutoModelForImageTextToText`` load the folder). The tokenizer is
word-level: specials, the words of the procedural captions, the two answer prefixes
(``"Positive point: "`` and ``"Negative point: "`` are one token each), ``<loc_0..G*G-1>`` and,
with ``iou_line=True`` (the default), SegAgent's PRM line and end answers: the 101 lines
``"Current IOU: 0\n" .. "Current IOU: 100\n"`` (one token each: the model's binned IoU head) and
``"Finish"`` / ``"No Object Found"`` (one token each). So an answer is at most 4 tokens + EOS:
``Current IOU: 74\nNegative point: <loc_87>``. The chat template puts the caption *before* the
image tokens.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from transformers import GenerationConfig

from .tiny import TinySegConfig, TinySegForClicks

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<ans>"]
ANSWER_TOKENS = ["Positive point: ", "Negative point: "]
IOU_BINS = 101  # "Current IOU: 0" .. "Current IOU: 100"
IOU_TOKENS = [f"Current IOU: {n}\n" for n in range(IOU_BINS)]
END_TOKENS = ["Finish", "No Object Found"]  # agents.mllm.prompt.FINISH_TEXT / NO_OBJECT_TEXT
WORDS = (
    "the a an small large big tiny red blue yellow purple orange white green black grey gray pink brown "
    "circle square triangle star cross ring frame line grid zigzag object shape thing one "
    "on at in of to left right top bottom above below middle center centre near next and with "
    "segment click point positive negative please find image picture"
).split()
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '<s>' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for c in message['content'] -%}{%- if c['type'] == 'text' -%}{{ c['text'] }}{{ ' ' }}{%- endif -%}{%- endfor -%}"
    "{%- for c in message['content'] -%}{%- if c['type'] == 'image' -%}{{ '<image>' }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '<ans>' }}{% generation %}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for c in message['content'] -%}{%- if c['type'] == 'text' -%}{{ c['text'] }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '</s>' }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<ans>' }}{%- endif -%}"
)



def build_tokenizer(loc_grid: int = 14, iou_line: bool = True):
    """Word-level tokenizer: specials, words, the two answer prefixes, ``<loc_0..G*G-1>``, then (with
    ``iou_line``) the 101 ``Current IOU`` lines and the two end answers."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[^a-z0-9]+"), " ")])
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", clean_up_tokenization_spaces=False)
    fast.add_special_tokens({"additional_special_tokens": ["<image>", "<ans>"]})
    from tokenizers import AddedToken

    fast.add_tokens([AddedToken(t, normalized=False, special=False, lstrip=False, rstrip=False) for t in ANSWER_TOKENS])
    fast.add_tokens([AddedToken(f"<loc_{k}>", normalized=False, special=False) for k in range(loc_grid * loc_grid)])
    if iou_line:
        fast.add_tokens([AddedToken(t, normalized=False, special=False, lstrip=False, rstrip=False)
                         for t in IOU_TOKENS + END_TOKENS])
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 4096
    return fast


def build_processor(loc_grid: int = 14, image_size: int = 112, patch_size: int = 16, iou_line: bool = True):
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    tok = build_tokenizer(loc_grid, iou_line)
    ip = CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size}, do_center_crop=False, crop_size=None,
        image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True, resample=3,
    )
    return LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=patch_size, vision_feature_select_strategy="full",
                          num_additional_image_tokens=0, chat_template=CHAT_TEMPLATE, image_token="<image>")


def build_tiny_vlm(out_dir: Optional[str] = None, seed: int = 0, **cfg):
    """Build processor + randomly initialised model from config; save both into ``out_dir`` if given.

    Returns ``out_dir`` when saving, else ``(model, processor)``.
    """
    loc_grid = int(cfg.pop("loc_grid", 14))
    image_size = int(cfg.pop("image_size", 112))
    patch_size = int(cfg.pop("patch_size", 16))
    iou_line = bool(cfg.pop("iou_line", True))
    proc = build_processor(loc_grid, image_size, patch_size, iou_line)
    tok = proc.tokenizer
    if iou_line:
        cfg.update(iou_token_offset=tok.convert_tokens_to_ids(IOU_TOKENS[0]), segagent_iou_line=True)
    config = TinySegConfig(
        vocab_size=len(tok), loc_grid=loc_grid, image_size=image_size, patch_size=patch_size,
        loc_token_offset=tok.convert_tokens_to_ids("<loc_0>"),
        image_token_id=tok.convert_tokens_to_ids("<image>"), ans_token_id=tok.convert_tokens_to_ids("<ans>"),
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **cfg,
    )
    assert tok.convert_tokens_to_ids(f"<loc_{loc_grid * loc_grid - 1}>") == config.loc_token_offset + loc_grid ** 2 - 1
    if iou_line:
        assert tok.convert_tokens_to_ids(IOU_TOKENS[-1]) == config.iou_token_offset + IOU_BINS - 1
    torch.manual_seed(seed)
    model = TinySegForClicks(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        max_new_tokens=5 if iou_line else 4, do_sample=False, use_cache=False,
    )
    if out_dir is None:
        return model, proc
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return out_dir



__all__ = ["ANSWER_TOKENS", "CHAT_TEMPLATE", "END_TOKENS", "IOU_BINS", "IOU_TOKENS", "build_processor", "build_tiny_vlm", "build_tokenizer"]
