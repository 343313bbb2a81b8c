"""What a tiny-VLM training run starts from: the warm start from another checkpoint and the check
that the example folders are labelled on the model's pointer grid.

Kept apart from :mod:`agents.training.train_tiny` (the loop) because both concern compatibility
between two artefacts (checkpoint -> model, examples -> model), not training itself.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def token_row_map(dst_vocab: dict[str, int], src_vocab: dict[str, int]) -> dict[int, int]:
    """``{dst id: src id}``: the source row each destination token starts from.

    Tokens both vocabularies hold map by their text. A ``<loc_k>`` of a different pointer grid maps
    to the source cell that contains its cell's centre (a 28x28 grid starts as the 14x14 one
    upsampled); other new tokens have no source row."""
    def grid_of(vocab: dict[str, int]) -> int:
        n = sum(1 for t in vocab if t.startswith("<loc_") and t.endswith(">"))
        g = int(round(n ** 0.5))
        return g if g * g == n else 0

    rows = {d: src_vocab[t] for t, d in dst_vocab.items() if t in src_vocab}
    gd, gs = grid_of(dst_vocab), grid_of(src_vocab)
    if gd and gs and gd != gs:
        for k in range(gd * gd):
            r, c = divmod(k, gd)
            sr, sc = int((r + 0.5) * gs / gd), int((c + 0.5) * gs / gd)
            rows[dst_vocab[f"<loc_{k}>"]] = src_vocab[f"<loc_{sr * gs + sc}>"]
    return rows


def warm_start(model: Any, path: str, tokenizer: Any = None) -> dict:
    """Copy the weights of the checkpoint at ``path`` into ``model`` where name and shape match.

    Token tables (``embed_tokens``, ``lm_head``) are copied row by row: by token text when
    ``tokenizer`` (the new model's) is given and ``path`` holds a tokenizer (:func:`token_row_map`,
    so a different pointer grid, whose ``<loc_k>`` tokens shift every later id, still lines up),
    else by id for the ids both vocabularies share (the tiny tokenizer only appends tokens). The
    pointer's position embedding ``key_pos`` of another grid is resized (nearest). Returns counts
    of what was copied."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    src = load_file(os.path.join(path, "model.safetensors"))
    own = model.state_dict()
    rows = None
    if tokenizer is not None and os.path.exists(os.path.join(path, "tokenizer.json")):
        from transformers import PreTrainedTokenizerFast

        rows = token_row_map(tokenizer.get_vocab(), PreTrainedTokenizerFast.from_pretrained(path).get_vocab())
    copied, partial, skipped = 0, 0, []
    with torch.no_grad():
        for name, value in src.items():
            if name not in own:
                skipped.append(name)
                continue
            dst = own[name]
            if name.split(".")[0] in ("embed_tokens", "lm_head") and dst.ndim == 2 and dst.shape[1] == value.shape[1] \
                    and (rows is not None or dst.shape != value.shape):
                if rows is not None:
                    pairs = [(d, s) for d, s in rows.items() if d < dst.shape[0] and s < value.shape[0]]
                    if not pairs:  # no token in common: nothing to copy
                        skipped.append(name)
                        continue
                    d_ids, s_ids = (torch.tensor(x) for x in zip(*pairs))
                    dst[d_ids] = value[s_ids].to(dst.dtype)
                else:
                    n = min(dst.shape[0], value.shape[0])
                    dst[:n].copy_(value[:n].to(dst.dtype))
                partial += 1
            elif dst.shape == value.shape:
                dst.copy_(value.to(dst.dtype))
                copied += 1
            elif name == "key_pos" and dst.ndim == 4 and dst.shape[:2] == value.shape[:2]:
                dst.copy_(F.interpolate(value.float(), size=dst.shape[-2:], mode="nearest").to(dst.dtype))
                copied += 1
            else:
                skipped.append(name)
    if skipped:
        log.warning("warm start from %s: %d tensors not copied (%s)", path, len(skipped), ", ".join(skipped[:5]))
    return {"copied": copied, "token_tables": partial, "skipped": len(skipped)}


def check_example_grids(folders: list[str], grid: int) -> None:
    """Refuse example folders labelled on another grid than the model's pointer: a cell index means
    a different place on another grid, so training on them would be silently wrong."""
    from .tiny_data import example_grid

    grids = {f: example_grid(f) for f in folders}
    wrong = {f: g for f, g in grids.items() if g != grid}
    if wrong:
        raise ValueError(f"examples labelled on another grid than the model's {grid}x{grid} pointer: "
                         + ", ".join(f"{f} ({g}x{g})" for f, g in wrong.items())
                         + f"; rebuild them with `python -m agents.training.tiny_data ... --grid {grid}` "
                         f"or train with --loc_grid matching them")


__all__ = ["check_example_grids", "token_row_map", "warm_start"]
