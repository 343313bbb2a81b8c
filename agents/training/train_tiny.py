"""Train the tiny pointer-readout VLM (``agents.mllm.tiny``) to click on procedural shapes.

Run::

    python -m agents.training.train_tiny --out agents/mllm/checkpoints/tiny --minutes 60

Data (generated in-process and cached as ``.npz`` under ``--cache``, so a pilot and the main run
reuse it):

* **first clicks**: empty-mask observations of ``shapes/train`` items (no segmenter call needed:
  the overlay of an empty mask is the image) labelled with a positive click in the target;
* **later clicks**: GrabCut episodes (initial state ``empty`` / ``box`` / ``points``) driven by the
  oracle, one example per step that strictly improves IoU (the observation *before* the step).

Labels are grid cells: the oracle (``segenv.clicker.next_click``) decides the sign; the cell is
the grid cell whose *centre* lies deepest inside the error region of that sign (so the decoded
click, at the cell centre, always lands in the right region), falling back to the oracle pixel's
cell. The shipped run uses a plain torch loop (the model class also trains with trl's
``SFTTrainer``; see ``tests/agents/test_tiny.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from agents.training.tiny_data import OBS_SIZE, cell_to_xy, label_cell, prep_image

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "data":
    from agents.training.tiny_data import make_data_main

    make_data_main(sys.argv[2:])
    sys.exit(0)


# ----------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    out: str = "agents/mllm/checkpoints/tiny"
    cache: str = "/tmp/tinycache"
    first_file: str = "first_train.npz"
    rollout_file: str = "roll_train.npz"
    minutes: float = 60.0
    max_steps: int = 0  # 0: time-limited only
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_frac: float = 0.05
    warmup_steps: int = 20
    weight_decay: float = 0.01
    first_frac: float = 0.6  # share of empty-mask first-click examples in a batch
    # labels of later-click (mask shown) examples: "oracle" = the oracle's click (mostly negatives),
    # "target" = a positive click on the target's deepest cell (GrabCut keeps the mask; measured on 40 val
    # items with cell-centre clicks: oracle mIoU@1..5 .931/.903/.931/.927/.966, repeat-positive .931 flat)
    later_labels: str = "oracle"
    flip_aug: bool = True  # mirror images (and left/right, top/bottom words) at random
    bf16: bool = False  # bf16 autocast (5x SLOWER than fp32 on this CPU: measured)
    eval_every_min: float = 8.0
    eval_first_n: int = 100
    eval_episodes: int = 30
    eval_split: str = "val"
    seed: int = 0
    threads: int = 2
    log_every: int = 20
    # model
    hidden_size: int = 128
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    intermediate_size: int = 384
    pointer_dim: int = 96
    cnn_channels: str = "16,32,64"
    prefix_lm: bool = True
    film: bool = True
    loc_grid: int = 14
    image_size: int = 112
    init_from: str = ""  # continue from a saved checkpoint


SWAP_H = {"left": "right", "right": "left"}
SWAP_V = {"top": "bottom", "bottom": "top", "above": "below", "below": "above"}


def flip_example(img: np.ndarray, text: str, cell: int, grid: int, hflip: bool, vflip: bool):
    r, c = divmod(int(cell), grid)
    words = text.split()
    if hflip:
        img = img[:, ::-1]
        c = grid - 1 - c
        words = [SWAP_H.get(w, w) for w in words]
    if vflip:
        img = img[::-1]
        r = grid - 1 - r
        words = [SWAP_V.get(w, w) for w in words]
    return img, " ".join(words), r * grid + c


class Batcher:
    """Token ids per caption (cached) and tensors for a batch of (image, caption, positive, cell)."""

    def __init__(self, processor, model_config) -> None:
        self.proc = processor
        self.tok = processor.tokenizer
        self.cfg = model_config
        self.n_img = model_config.num_image_tokens
        self.cache: dict[str, list[int]] = {}
        self.pos_id = self.tok.convert_tokens_to_ids("Positive point: ")
        self.neg_id = self.tok.convert_tokens_to_ids("Negative point: ")
        self.mean = np.array(processor.image_processor.image_mean, np.float32) * 255
        self.std = np.array(processor.image_processor.image_std, np.float32) * 255

    def prompt_ids(self, text: str) -> list[int]:
        ids = self.cache.get(text)
        if ids is None:
            msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
            s = self.proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            s = s.replace("<image>", "<image>" * self.n_img)
            ids = self.tok(s, add_special_tokens=False)["input_ids"]
            self.cache[text] = ids
        return ids

    def pixels(self, imgs: np.ndarray):
        import torch

        x = (np.asarray(imgs, np.float32) - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def batch(self, imgs, texts, positive=None, cells=None):
        import torch

        seqs, labs = [], []
        for i, t in enumerate(texts):
            p = self.prompt_ids(t)
            if positive is None:
                seqs.append(p)
                continue
            ans = [self.pos_id if positive[i] else self.neg_id, self.cfg.loc_token_offset + int(cells[i]), self.tok.eos_token_id]
            seqs.append(p + ans)
            labs.append([-100] * len(p) + ans)
        L = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        if positive is None:  # left padding for generation
            ids = torch.tensor([[pad] * (L - len(s)) + s for s in seqs])
            am = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs])
            return {"input_ids": ids, "attention_mask": am, "pixel_values": self.pixels(imgs)}
        ids = torch.tensor([s + [pad] * (L - len(s)) for s in seqs])
        am = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in seqs])
        lab = torch.tensor([s + [-100] * (L - len(s)) for s in labs])
        return {"input_ids": ids, "attention_mask": am, "pixel_values": self.pixels(imgs), "labels": lab}


def greedy_answers(model, batcher: Batcher, imgs, texts, max_new: int = 2) -> list[str]:
    """Greedy decoding without KV cache (what ``generate(do_sample=False)`` does), batched."""
    import torch

    enc = batcher.batch(imgs, texts)
    ids, am, pv = enc["input_ids"], enc["attention_mask"], enc["pixel_values"]
    out = [[] for _ in range(len(texts))]
    done = torch.zeros(len(texts), dtype=torch.bool)
    with torch.no_grad():
        for _ in range(max_new):
            logits = model(input_ids=ids, attention_mask=am, pixel_values=pv).logits[:, -1]
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, batcher.tok.pad_token_id), nxt)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    out[i].append(t)
            done |= nxt == batcher.tok.eos_token_id
            ids = torch.cat([ids, nxt[:, None]], 1)
            am = torch.cat([am, (~done | (nxt == batcher.tok.eos_token_id)).long()[:, None]], 1)
            if bool(done.all()):
                break
    texts_out = []
    for o in out:
        s = batcher.tok.decode(o, skip_special_tokens=False)
        texts_out.append(s.replace("</s>", "").replace("<pad>", "").strip())
    return texts_out


def evaluate(model, batcher: Batcher, grid: int, split: str = "val", n_first: int = 200, n_episodes: int = 50,
             max_clicks: int = 5) -> dict:
    """First-click hit rate (empty mask, ``n_first`` items) and mIoU@1..5 over ``n_episodes`` GrabCut episodes."""
    import gymnasium as gym

    import segenv  # noqa: F401
    from agents.mllm.prompt import ActionFormat, parse_action_text
    from segenv import render as R
    from segenv.actions import Click
    from segenv.datasets import make_dataset

    model.eval()
    t0 = time.time()
    fmt = ActionFormat("loc", loc_grid=grid)

    def parse_answer(text: str, grid: int):
        click = parse_action_text(text, fmt).click
        return None if click is None else (click.x, click.y, click.positive)

    ds = make_dataset("shapes", split=split)
    hits, right_obj, invalid_first = 0, 0, 0
    bs = 50
    for s0 in range(0, n_first, bs):
        samples = [ds[i] for i in range(s0, min(s0 + bs, n_first))]
        imgs = [prep_image(R.resize_image(s.image, OBS_SIZE), model.config.image_size) for s in samples]
        answers = greedy_answers(model, batcher, imgs, [s.text for s in samples])
        for s, a in zip(samples, answers):
            p = parse_answer(a, grid)
            if p is None:
                invalid_first += 1
                continue
            h, w = s.mask.shape
            row, col = min(int(p[1] * h), h - 1), min(int(p[0] * w), w - 1)
            hits += int(bool(s.mask[row, col]) and p[2])
            right_obj += int(bool(s.mask[row, col]))
    env = gym.make("SegAgent-Shapes-v0", split=split, max_clicks=max_clicks, image_size=OBS_SIZE).unwrapped
    ious = np.zeros((n_episodes, max_clicks))
    n_inv, n_steps = 0, 0
    for e in range(n_episodes):
        obs, info = env.reset(seed=e, options={"index": e})
        for k in range(max_clicks):
            a = greedy_answers(model, batcher, [prep_image(obs["overlay"], model.config.image_size)], [obs["text"]])[0]
            p = parse_answer(a, grid)
            n_steps += 1
            if p is None:
                n_inv += 1
            obs, _, term, trunc, info = env.step(None if p is None else Click(p[0], p[1], p[2]))
            ious[e, k] = info["iou"]
    model.train()
    miou = ious.mean(0)
    return {"first_hit": hits / n_first, "first_on_target": right_obj / n_first, "first_invalid": invalid_first / n_first,
            "miou": [round(float(v), 4) for v in miou], "miou@5": float(miou[-1]), "invalid_rate": n_inv / max(n_steps, 1),
            "n_first": n_first, "n_episodes": n_episodes, "split": split, "eval_s": round(time.time() - t0, 1)}


def save_checkpoint(model, processor, out: str) -> None:
    """fp16 safetensors + processor files (weights are cast back to float32 when loading)."""
    import copy

    import torch

    os.makedirs(out, exist_ok=True)
    m = copy.deepcopy(model).to(torch.float16)
    m.save_pretrained(out)
    processor.save_pretrained(out)
    cfg_path = os.path.join(out, "config.json")
    with open(cfg_path) as f:
        conf = json.load(f)
    conf["dtype"] = "float32"  # fp16 on disk, but `from_pretrained` (dtype="auto") loads float32 for CPU inference
    with open(cfg_path, "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)


def plot_history(hist: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = hist["train"]
    ev = hist["eval"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    if tr:
        ax[0].plot([r["step"] for r in tr], [r["loss"] for r in tr], lw=1)
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("training loss (answer tokens)")
    ax[0].set_yscale("log")
    ax[0].set_title(f"train loss ({hist.get('train_seconds', 0) / 60:.1f} min on 2 CPU cores)")
    if ev:
        st = [r["step"] for r in ev]
        ax[1].plot(st, [r["miou@5"] for r in ev], "o-", label="held-out mIoU@5")
        ax[1].plot(st, [r["first_hit"] for r in ev], "s-", label="first-click hit rate")
        ax[1].plot(st, [r["miou"][0] for r in ev], "^-", label="held-out mIoU@1")
        ax2 = ax[1].secondary_xaxis("top", functions=(lambda s: s, lambda s: s))
        ax2.set_xticks(st[:: max(1, len(st) // 5)])
        ax2.set_xticklabels([f"{r['time_s'] / 60:.0f}m" for r in ev][:: max(1, len(st) // 5)])
    ax[1].set_xlabel("step (top: minutes)")
    ax[1].set_ylim(0, 1)
    ax[1].legend(loc="lower right")
    ax[1].set_title(f"held-out ({ev[-1]['split'] if ev else ''}) evaluation")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def load_data(path: str) -> Optional[dict]:
    if not os.path.exists(path):
        return None
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def train(cfg: TrainConfig) -> dict:
    import torch

    from agents.mllm.tiny_build import build_tiny_vlm

    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(cfg.init_from)
        model = AutoModelForImageTextToText.from_pretrained(cfg.init_from, dtype=torch.float32)
    else:
        model, processor = build_tiny_vlm(
            None, seed=cfg.seed, loc_grid=cfg.loc_grid, image_size=cfg.image_size, hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
            intermediate_size=cfg.intermediate_size, pointer_dim=cfg.pointer_dim, prefix_lm=cfg.prefix_lm, film=cfg.film,
            cnn_channels=tuple(int(c) for c in cfg.cnn_channels.split(",")))
    model.float().train()
    grid = model.config.loc_grid
    batcher = Batcher(processor, model.config)
    first = load_data(os.path.join(cfg.cache, cfg.first_file))
    roll = load_data(os.path.join(cfg.cache, cfg.rollout_file))
    if first is None:
        raise SystemExit(f"no first-click data at {cfg.cache}/{cfg.first_file}: run `python -m agents.training.train_tiny data ...`")
    if roll is not None and cfg.later_labels == "target":
        from segenv.datasets import make_dataset

        ds = make_dataset("shapes", split="train")
        roll["cells"] = np.array([label_cell(ds[int(i)].mask, np.zeros_like(ds[int(i)].mask), grid)[1]
                                  for i in roll["index"]], np.int64)
        roll["positive"] = np.ones(len(roll["cells"]), bool)
    n_first, n_roll = len(first["cells"]), (0 if roll is None else len(roll["cells"]))
    print(f"[train] {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params; data: {n_first} first-click, "
          f"{n_roll} later-click examples ({0 if roll is None else roll['positive'].mean():.2f} positive)", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98))
    budget = cfg.minutes * 60.0
    hist = {"config": asdict(cfg), "train": [], "eval": [], "data": {"first_click": n_first, "later_click": n_roll}}
    rng = np.random.default_rng(cfg.seed)
    t_start = time.time()
    t_eval_time = 0.0  # evaluation time is excluded from the training-time budget
    last_eval = 0.0
    best = -1.0
    step, run_loss, run_n, run_loc, run_sign = 0, 0.0, 0, 0.0, 0.0
    os.makedirs(cfg.out, exist_ok=True)

    def do_eval():
        nonlocal t_eval_time, best
        te = time.time()
        r = evaluate(model, batcher, grid, cfg.eval_split, cfg.eval_first_n, cfg.eval_episodes)
        t_eval_time += time.time() - te
        r.update(step=step, time_s=round(time.time() - t_start - t_eval_time, 1))
        hist["eval"].append(r)
        print(f"[eval] step {step} t={r['time_s'] / 60:.1f}m first_hit={r['first_hit']:.3f} on_target={r['first_on_target']:.3f} "
              f"mIoU@1..5={r['miou']} invalid={r['invalid_rate']:.3f} ({r['eval_s']}s)", flush=True)
        if r["miou@5"] > best:
            best = r["miou@5"]
            save_checkpoint(model, processor, cfg.out)
            hist["best"] = {"step": step, "miou@5": best}
        hist["train_seconds"] = round(time.time() - t_start - t_eval_time, 1)
        with open(os.path.join(cfg.out, "training_history.json"), "w") as f:
            json.dump(hist, f, indent=1)
        plot_history(hist, os.path.join(cfg.out, "learning_curve.png"))

    while True:
        elapsed = time.time() - t_start - t_eval_time
        if elapsed >= budget or (cfg.max_steps and step >= cfg.max_steps):
            break
        frac = min(1.0, elapsed / budget) if not cfg.max_steps else step / cfg.max_steps
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) * (
            cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        nf = int(round(cfg.batch_size * (cfg.first_frac if n_roll else 1.0)))
        idx_f = rng.integers(n_first, size=nf)
        imgs, texts, pos, cells = [], [], [], []
        for src, idx in ((first, idx_f), (roll, rng.integers(max(n_roll, 1), size=cfg.batch_size - nf) if n_roll else [])):
            for i in idx:
                img, text, cell = src["images"][i], str(src["texts"][i]), int(src["cells"][i])
                if cfg.flip_aug:
                    img, text, cell = flip_example(img, text, cell, grid, rng.random() < 0.5, rng.random() < 0.5)
                imgs.append(img)
                texts.append(text)
                pos.append(bool(src["positive"][i]))
                cells.append(cell)
        b = batcher.batch(np.stack(imgs), texts, pos, cells)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            out = model(**b)
        loss = out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_loss += float(loss.detach())
        run_n += 1
        with torch.no_grad():  # answer accuracy on this training batch: sign token and location token
            lab = b["labels"][:, 1:]
            pred = out.logits[:, :-1].argmax(-1)
            is_loc = lab >= model.config.loc_token_offset
            is_sign = (lab == batcher.pos_id) | (lab == batcher.neg_id)
            run_loc += float((pred[is_loc] == lab[is_loc]).float().mean())
            run_sign += float((pred[is_sign] == lab[is_sign]).float().mean())
        if step % cfg.log_every == 0:
            rec = {"step": step, "time_s": round(time.time() - t_start - t_eval_time, 1), "loss": run_loss / run_n, "lr": lr,
                   "train_loc_acc": run_loc / run_n, "train_sign_acc": run_sign / run_n}
            hist["train"].append(rec)
            print(f"[train] step {step} t={rec['time_s']:.0f}s loss={rec['loss']:.4f} loc_acc={rec['train_loc_acc']:.3f} "
                  f"sign_acc={rec['train_sign_acc']:.3f} lr={lr:.2e}", flush=True)
            run_loss, run_n, run_loc, run_sign = 0.0, 0, 0.0, 0.0
        if time.time() - t_start - t_eval_time - last_eval >= cfg.eval_every_min * 60:
            last_eval = time.time() - t_start - t_eval_time
            do_eval()
    do_eval()
    final = hist["eval"][-1]
    if final["miou@5"] < best:  # keep the best checkpoint on disk (already saved); say so
        print(f"[train] final mIoU@5 {final['miou@5']:.3f} < best {best:.3f}: keeping the best checkpoint", flush=True)
    hist["train_seconds"] = round(time.time() - t_start - t_eval_time, 1)
    hist["wall_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(cfg.out, "training_history.json"), "w") as f:
        json.dump(hist, f, indent=1)
    plot_history(hist, os.path.join(cfg.out, "learning_curve.png"))
    return hist


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in TrainConfig.__dataclass_fields__.values():
        name = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(name, type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default)
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            ap.add_argument(name, type=typ, default=f.default)
    cfg = TrainConfig(**vars(ap.parse_args(argv)))
    train(cfg)


if __name__ == "__main__":
    main()
