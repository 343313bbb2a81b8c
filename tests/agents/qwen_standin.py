"""A small stand-in for a Qwen-VL-Chat (v1) checkpoint folder, built by the tests.

It follows the same remote-code interface as the released SegAgent-Qwen checkpoint: ``config.json``
and ``tokenizer_config.json`` name classes in a Python file of the folder (``auto_map``), so it
loads only with ``trust_remote_code=True``; the image arrives as a FILE PATH inside the prompt
(``Picture 1: <img>PATH</img>``) and the model reads the file itself; the answer is
``Current IOU: NN`` then ``Positive point: (y, x)`` in ``[0, 1000)``, ended by ``<|im_end|>``.

Its "model" answers a click at the centroid of the green overlay in the JPEG it was given (or the
image centre when there is none), so a test can check that the image path, the file and the axis
order all went through. It is NOT the real checkpoint; that one was not run here.
"""

from __future__ import annotations

import json
from pathlib import Path

SOURCE = r'''
import re

import numpy as np
import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.tokenization_utils_base import BatchEncoding

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class StandInConfig(PretrainedConfig):
    model_type = "segagent_qwen_standin"


class StandInTokenizer:
    """Bytes 0..255, then the three Qwen chat specials."""

    def __init__(self):
        self.specials = {t: 256 + i for i, t in enumerate(SPECIALS)}
        self.im_end_id = self.specials["<|im_end|>"]
        self.eos_token_id = self.pad_token_id = self.specials["<|endoftext|>"]

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls()

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoTokenizer"):
        pass

    def get_vocab(self):
        return {**{f"<byte_{i}>": i for i in range(256)}, **self.specials}

    def convert_tokens_to_ids(self, token):
        return self.get_vocab()[token]

    def encode(self, text):
        ids = []
        for part in re.split("(" + "|".join(re.escape(s) for s in SPECIALS) + ")", text):
            ids.extend([self.specials[part]] if part in self.specials else list(part.encode("utf-8")))
        return ids

    def __call__(self, text, return_tensors=None, **kwargs):
        ids = self.encode(text)
        data = {"input_ids": [ids], "attention_mask": [[1] * len(ids)]}
        if return_tensors == "pt":
            data = {k: torch.tensor(v) for k, v in data.items()}
        return BatchEncoding(data)

    def decode(self, ids, skip_special_tokens=False):
        inverse = {v: k for k, v in self.specials.items()}
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if i < 256:
                buf.append(i)
                continue
            out.append(buf.decode("utf-8", "replace"))
            buf = bytearray()
            if not skip_special_tokens:
                out.append(inverse[i])
        out.append(buf.decode("utf-8", "replace"))
        return "".join(out)


class StandInForCausalLM(PreTrainedModel):
    config_class = StandInConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.post_init()

    def _init_weights(self, module):
        pass

    def forward(self, input_ids=None, **kwargs):
        raise NotImplementedError("the stand-in only generates")

    def generate(self, input_ids=None, attention_mask=None, max_new_tokens=32, eos_token_id=None, **kwargs):
        from PIL import Image

        text = bytes(int(t) for t in input_ids[0] if int(t) < 256).decode("utf-8")
        path = re.search(r"<img>(.*?)</img>", text).group(1)  # the model reads the image file itself
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        green = (rgb[..., 1] > rgb[..., 0] + 40) & (rgb[..., 1] > rgb[..., 2] + 40)
        h, w = green.shape
        rows, cols = np.nonzero(green)
        y, x = (rows.mean() / h, cols.mean() / w) if len(rows) else (0.5, 0.5)
        answer = f"Current IOU: 42\nPositive point: ({int(y * 1000)}, {int(x * 1000)})"
        new = list(answer.encode("utf-8"))[:max_new_tokens] + [int(eos_token_id)]
        return torch.cat([input_ids, torch.tensor([new], dtype=input_ids.dtype)], dim=1)
'''


def build_qwen_standin(folder: "str | Path") -> Path:
    """Write the stand-in checkpoint folder (config, weights, tokenizer config, remote code)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "standin.py").write_text(SOURCE)
    config = {"model_type": "segagent_qwen_standin", "architectures": ["StandInForCausalLM"],
              "auto_map": {"AutoConfig": "standin.StandInConfig", "AutoModelForCausalLM": "standin.StandInForCausalLM"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"auto_map": {"AutoTokenizer": ["standin.StandInTokenizer", None]}, "tokenizer_class": "StandInTokenizer"}))
    import torch
    from safetensors.torch import save_file

    save_file({"scale": torch.ones(1)}, str(folder / "model.safetensors"))
    return folder
