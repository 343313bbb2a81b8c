"""Train ``clicknet`` (segenv.segmenters.clicknet) with RITM's iterative click simulation, on this CPU.

Why here and not in ``segenv``: the env only *runs* a segmenter; producing its weights is a
training job like SFT and StaR, and it evaluates through the rollout harness with the oracle
agent (``agents.oracle``), which ``segenv`` must not import.

The recipe (RITM's iterative training, adapted to a two-stream net):

1. A batch of procedural train images (``shapes`` and ``thin_shapes``, ``--thin-fraction``),
   each with a random visible object as the target (not only the captioned one: the segmenter
   never reads text), randomly flipped.
2. The image encoder runs once per image, with gradients.
3. The first prompt is one of the env's starts: a positive click (half at the clicker's
   deepest point, half at a random object pixel), a jittered ground-truth box
   (``initial_state="box"``) or ``initial_points`` random pixels in the box labelled by ground
   truth (``initial_state="points"``).
4. 0..``max_iters`` rounds without gradients: decode, threshold, add
   :func:`segenv.clicker.next_click` from the model's own errors, feed its logits back.
5. One decode with gradients; loss = BCE + soft IoU at the work size.

It checkpoints (full state, ``OUT/state.pt``) every ``--save-every-minutes``, resumes from it,
evaluates through the harness (oracle, RITM protocol, ``--eval-items`` val items per set), and
writes the fp16 checkpoint, ``history.json`` and ``learning_curve.png`` to ``--export``.

    python -m agents.training.clicknet --steps 12000 --minutes 60 --out runs/clicknet
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from agents.cliargs import arg
from segenv.clicker import next_click
from segenv.datasets.shapes import ShapeSpec, ShapesDataset, draw_shape


@dataclass
class ClickNetTrainConfig:
    """Train clicknet with RITM's iterative click simulation (docs/clicknet.md)."""

    out: str = arg("runs/clicknet", "folder of the resumable state (state.pt) and logs")
    export: str = arg("segenv/segmenters/checkpoints/clicknet", "where the fp16 checkpoint the segmenter loads is written")
    steps: int = arg(12000, "total optimiser steps of the cosine schedule, across resumed runs")
    minutes: float = arg(60.0, "wall-clock budget of this invocation; the state is saved when it ends")
    batch_size: int = arg(16, "images per step")
    lr: float = arg(2e-3, "peak AdamW learning rate")
    weight_decay: float = arg(1e-4, "AdamW weight decay")
    warmup_steps: int = arg(200, "linear warm-up steps")
    thin_fraction: float = arg(0.6, "share of thin_shapes images (the rest: shapes)")
    max_iters: int = arg(6, "most no-gradient click rounds before the trained decode")
    box_prob: float = arg(0.15, "share of episodes that start from a jittered GT box")
    points_prob: float = arg(0.2, "share that start from 3 GT-labelled random points in the box")
    pos_weight: float = arg(2.0, "BCE weight of object pixels")
    eval_every_minutes: float = arg(10.0, "minutes between harness evaluations")
    save_every_minutes: float = arg(5.0, "minutes between state saves")
    eval_items: int = arg(20, "val items per set in each evaluation")
    threads: int = arg(1, "torch threads")
    seed: int = arg(0, "seed of the data stream and the weights")


def visible_object_masks(sample) -> list[np.ndarray]:
    """Every object's visible mask in a procedural sample (the same painting order as the dataset)."""
    s = sample.mask.shape[0]
    owner = np.full((s, s), -1, np.int16)
    for k, spec in enumerate(sample.meta["objects"]):
        canvas = np.zeros((s, s), np.uint8)
        draw_shape(canvas, ShapeSpec(**spec))
        owner[canvas.astype(bool)] = k
    return [owner == k for k in range(len(sample.meta["objects"]))]


class BatchSampler:
    """Draws (image, target mask) pairs from the procedural train splits, seeded."""

    def __init__(self, cfg: ClickNetTrainConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.sets = {False: ShapesDataset("train", length=10**7), True: ShapesDataset("train", thin=True, length=10**7)}

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        thin = bool(self.rng.random() < self.cfg.thin_fraction)
        sample = self.sets[thin][int(self.rng.integers(10**7))]
        masks = [m for m in visible_object_masks(sample) if m.sum() >= 20]
        gt = masks[int(self.rng.integers(len(masks)))] if masks else sample.mask
        image = sample.image
        if self.rng.random() < 0.5:
            image, gt = image[:, ::-1], gt[:, ::-1]
        if self.rng.random() < 0.5:
            image, gt = image[::-1], gt[::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(gt)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.draw() for _ in range(n)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def initial_prompt(gt: np.ndarray, cfg: ClickNetTrainConfig, rng: np.random.Generator):
    """One start as the env makes it: clicks [(x, y, label)] in pixel centres, a box or None."""
    rows, cols = np.nonzero(gt)
    r = rng.random()
    if r < cfg.box_prob:
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        jit = rng.uniform(-0.05, 0.05, 4) * gt.shape[0]
        box = np.array([x0 + jit[0], y0 + jit[1], x1 + jit[2], y1 + jit[3]], np.float32)
        return [], box
    if r < cfg.box_prob + cfg.points_prob:
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        clicks = []
        for _ in range(3):
            row, col = int(rng.integers(y0, y1)), int(rng.integers(x0, x1))
            clicks.append((col + 0.5, row + 0.5, int(gt[row, col])))
        if not any(c[2] for c in clicks):
            k = int(rng.integers(len(rows)))
            clicks.append((cols[k] + 0.5, rows[k] + 0.5, 1))
        return clicks, None
    if rng.random() < 0.5:
        c = next_click(gt, np.zeros_like(gt))
        assert c is not None
        return [(c.col + 0.5, c.row + 0.5, 1)], None
    k = int(rng.integers(len(rows)))
    return [(cols[k] + 0.5, rows[k] + 0.5, 1)], None


def prompt_tensors(clicks: list[list[tuple]], boxes: list[Optional[np.ndarray]]):
    import torch

    b = len(clicks)
    n = max(1, max(len(c) for c in clicks))
    pts = torch.zeros(b, n, 2)
    lab = torch.zeros(b, n, dtype=torch.long)
    val = torch.zeros(b, n, dtype=torch.bool)
    for i, cs in enumerate(clicks):
        for j, (x, y, l) in enumerate(cs):
            pts[i, j, 0], pts[i, j, 1], lab[i, j], val[i, j] = x, y, l, True
    box = None
    if any(bx is not None for bx in boxes):
        box = torch.full((b, 4), float("nan"))
        for i, bx in enumerate(boxes):
            if bx is not None:
                box[i] = torch.from_numpy(bx)
    return pts, lab, val, box


def train_step(model, opt, sampler: BatchSampler, cfg: ClickNetTrainConfig, rng: np.random.Generator) -> float:
    import torch
    import torch.nn.functional as F

    images, gts = sampler.batch(cfg.batch_size)
    s = model.cfg.work_size
    model.train()
    feats = model.encode(torch.from_numpy(images))
    starts = [initial_prompt(g, cfg, rng) for g in gts]
    clicks = [list(c) for c, _ in starts]
    boxes = [b for _, b in starts]
    prev = None
    n_iter = int(rng.integers(0, cfg.max_iters + 1))
    if n_iter:
        detached = tuple(f.detach() for f in feats)
        with torch.no_grad():
            for _ in range(n_iter):
                pts, lab, val, box = prompt_tensors(clicks, boxes)
                logits = model.decode(detached, pts, lab, val, prev_logits=prev, box=box)
                preds = (F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)[:, 0] > 0).numpy()
                for i in range(len(gts)):
                    clicked = [(int(y), int(x)) for x, y, _ in clicks[i]]
                    c = next_click(gts[i], preds[i], None, clicked)
                    if c is not None:
                        clicks[i].append((c.col + 0.5, c.row + 0.5, int(c.positive)))
                prev = logits
    pts, lab, val, box = prompt_tensors(clicks, boxes)
    logits = model.decode(feats, pts, lab, val, prev_logits=prev, box=box)
    full = F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)[:, 0]
    target = torch.from_numpy(gts).float()
    bce = F.binary_cross_entropy_with_logits(full, target, pos_weight=torch.tensor(cfg.pos_weight))
    p = torch.sigmoid(full)
    inter = (p * target).sum((1, 2))
    union = (p + target - p * target).sum((1, 2)).clamp_min(1.0)
    loss = bce + (1.0 - inter / union).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
    opt.step()
    return loss.item()


def evaluate(model, items: int) -> dict:
    """Oracle through the harness, RITM protocol (empty start, 20 clicks, stop at 0.90), val splits."""
    from agents.oracle import OracleAgent
    from segenv.env import SegEnv
    from segenv.rollout import run_episodes, summarize
    from segenv.segmenters.clicknet import ClickNetSegmenter

    model.eval()
    seg = ClickNetSegmenter(model=model)
    out = {}
    for name in ("shapes", "thin_shapes"):
        env = SegEnv(dataset=name, split="val", segmenter=seg, image_size=64, max_clicks=20, target_iou=0.9)
        trajs = run_episodes(OracleAgent(), env, items, progress=False)
        summ = summarize(trajs, max_clicks=20)
        out[name] = {k: summ[k] for k in ("noc85", "noc90", "nof90", "miou_per_click")}
        out[name]["miou_per_click"] = [round(v, 4) for v in summ["miou_per_click"][:10]]
    model.train()
    return out


def lr_at(step: int, cfg: ClickNetTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def plot_history(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    steps, losses = zip(*history["loss"]) if history["loss"] else ((), ())
    if losses:
        k = max(1, len(losses) // 100)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        axes[0].plot(steps[k - 1 :], smooth)
    axes[0].set(xlabel="step", ylabel="loss (BCE + soft IoU)", title="training loss")
    for name, style in (("shapes", "o-"), ("thin_shapes", "s-")):
        pts = [(e["step"], e["eval"][name]["noc90"]) for e in history["evals"]]
        if pts:
            axes[1].plot(*zip(*pts), style, label=name)
    axes[1].set(xlabel="step", ylabel="NoC@90 (oracle, val, 20 clicks)", title="held-out NoC@90")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> dict:
    import torch

    from segenv.segmenters.clicknet import save_clicknet
    from segenv.segmenters.clicknet_model import ClickNet, ClickNetConfig

    from agents.cliargs import parse_dataclass

    cfg = parse_dataclass(ClickNetTrainConfig, argv, description=__doc__.split("\n\n")[0])
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out, export = Path(cfg.out), Path(cfg.export)
    out.mkdir(parents=True, exist_ok=True)
    model = ClickNet(ClickNetConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: dict = {"config": asdict(cfg), "loss": [], "evals": [], "seconds": 0.0}
    step = 0
    rng = np.random.default_rng(cfg.seed)
    state_path = out / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        history, step = state["history"], state["step"]
        rng = np.random.default_rng([cfg.seed, step])  # a fresh, still seeded stream after a resume
        print(f"resumed from {state_path} at step {step}")
    sampler = BatchSampler(cfg, rng)
    t_start = time.time()
    t_saved = t_eval = t_start
    base_seconds = history["seconds"]

    def save() -> None:
        history["seconds"] = base_seconds + time.time() - t_start
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "history": history, "step": step}, state_path)
        save_clicknet(model, export)
        (export / "history.json").write_text(json.dumps(history))
        plot_history(history, export / "learning_curve.png")

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc="clicknet")
    while step < cfg.steps and time.time() - t_start < cfg.minutes * 60:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = train_step(model, opt, sampler, cfg, rng)
        history["loss"].append((step, round(loss, 5)))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        now = time.time()
        if now - t_eval > cfg.eval_every_minutes * 60:
            ev = evaluate(model, cfg.eval_items)
            history["evals"].append({"step": step, "minutes": round((base_seconds + now - t_start) / 60, 1), "eval": ev})
            print(json.dumps(history["evals"][-1]), flush=True)
            t_eval = time.time()
        if now - t_saved > cfg.save_every_minutes * 60:
            save()
            t_saved = time.time()
    bar.close()
    ev = evaluate(model, cfg.eval_items)
    history["evals"].append({"step": step, "minutes": round((base_seconds + time.time() - t_start) / 60, 1), "eval": ev})
    print(json.dumps(history["evals"][-1]), flush=True)
    save()
    return history


if __name__ == "__main__":
    main()
