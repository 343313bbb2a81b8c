"""Tiny stock VLM checkpoints built from configs (random weights), for tests and smoke runs.

:func:`build_tiny_llava` and :func:`build_tiny_idefics3` write a complete local checkpoint folder
(``config.json``, weights, tokenizer, processor with a chat template) that loads with
``AutoProcessor.from_pretrained`` + ``AutoModelForImageTextToText.from_pretrained``, exactly like
a downloaded checkpoint. Nothing is downloaded: the byte-level BPE tokenizer is trained here on a
few strings with ``tokenizers`` (docs/conventions.md#toolchain-notes).

The chat template handles list content (``{"type": "image"}`` / ``{"type": "text"}``), ends the
assistant turn with the EOS token (so SFT teaches the model to stop) and wraps it in
``{% generation %}`` markers (for ``assistant_only_loss``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
IDEFICS3_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]

# One template for both layouts; `eos` is the string that ends an assistant turn.
_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{{ '\\n' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
)
_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}ASSISTANT: {% generation %}" + _CONTENT + "{{ EOS }}{% endgeneration %}"
    "{% else %}{% if message['role'] == 'system' %}SYSTEM: {% else %}USER: {% endif %}" + _CONTENT + "{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


def chat_template(eos: str) -> str:
    """The tiny models' chat template, ending assistant turns with ``eos``."""
    return _TEMPLATE.replace("{{ EOS }}", "{{ '" + eos + "' }}")


def _corpus(extra: Iterable[str] = ()) -> list[str]:
    """Strings the tokenizer is trained on: prompts, action texts and shape captions."""
    from .prompt import ActionFormat, build_prompt, render_action
    from segenv.actions import Click

    texts = list(extra)
    for style in ("llava", "qwen"):
        system, user = build_prompt("the small red circle on the left", style=style)
        texts += [user] + ([system] if system else [])
    words = "the small large red blue yellow purple orange white circle square triangle star cross ring frame line grid zigzag object on the left right top bottom of"
    texts.append(words)
    for fmt in (ActionFormat("decimal"), ActionFormat("int1000")):
        for k in range(0, 100, 3):
            v = k / 100.0
            texts.append(render_action(Click(v, 1 - v - 0.001, k % 2 == 0), fmt, iou=v))
    texts += ["USER: ", "ASSISTANT: ", "SYSTEM: ", "0123456789 .,:()"]
    return texts


def build_tokenizer(specials: list[str], vocab_size: int = 400, extra_tokens: Iterable[str] = (), corpus: Iterable[str] = ()):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on :func:`_corpus` (+ ``corpus``).

    ``extra_tokens`` become added (non-special) tokens, e.g. ``<loc_k>`` grid tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={},
    )
    extra = list(extra_tokens)
    if extra:
        fast.add_tokens(extra)
    return fast


def build_tiny_llava(
    path: "str | os.PathLike",
    image_size: int = 64,
    patch_size: int = 16,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    extra_tokens: Iterable[str] = (),
) -> Path:
    """Write a tiny LLaVA (CLIP vision tower + Llama LM) checkpoint to ``path`` and return it.

    ``image_size`` px images, ``(image_size / patch_size) ** 2`` image tokens.
    """
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(LLAVA_SPECIALS, extra_tokens=extra_tokens)
    tokenizer.chat_template = chat_template(tokenizer.eos_token)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template(tokenizer.eos_token),
    )
    vision = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=hidden_size,
    )
    text = _tiny_llama_config(tokenizer, hidden_size, num_layers, tokenizer.eos_token_id)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _tiny_llama_config(tokenizer, hidden_size: int, num_layers: int, eos_token_id: int):
    """The small Llama text model both tiny layouts share."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_idefics3(
    path: "str | os.PathLike",
    image_size: int = 64,
    patch_size: int = 16,
    scale_factor: int = 2,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    extra_tokens: Iterable[str] = (),
) -> Path:
    """Write a tiny Idefics3 (SmolVLM layout) checkpoint to ``path`` and return it.

    One ``image_size`` px tile (no image splitting): ``(image_size / patch_size / scale_factor) ** 2``
    image tokens after the pixel shuffle.
    """
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(IDEFICS3_SPECIALS, extra_tokens=extra_tokens)
    eot = "<end_of_utterance>"
    template = chat_template(eot)
    tokenizer.chat_template = template
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    seq_len = (image_size // patch_size // scale_factor) ** 2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=seq_len,
        chat_template=template,
    )
    vision = Idefics3VisionConfig(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = _tiny_llama_config(tokenizer, hidden_size, num_layers, tokenizer.convert_tokens_to_ids(eot))
    config = Idefics3Config(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer, eos=[tokenizer.convert_tokens_to_ids(eot), tokenizer.eos_token_id])
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _set_generation_ids(model, tokenizer, eos: Optional[list[int]] = None) -> None:
    gc = model.generation_config
    gc.eos_token_id = eos if eos is not None else tokenizer.eos_token_id
    gc.pad_token_id = tokenizer.pad_token_id
    gc.bos_token_id = tokenizer.bos_token_id


__all__ = ["build_tiny_idefics3", "build_tiny_llava", "build_tokenizer", "chat_template"]
