"""Segmenter backends side by side: encoder / decoder cost, predict_many batching, memory.

    python benchmarks/segmenters.py                       # grabcut + tiny sam / hf-sam / hf-sam_hq / hf-sam2 / hf-sam3_tracker
    python benchmarks/segmenters.py --quick               # one image, fewer clicks and repeats
    python benchmarks/segmenters.py --sam /ckpt/sam_vit_b_01ec64.pth --hf /models/sam2.1-hiera-tiny

For each backend, on a few synthetic 512x512 RGB images (a gradient, noise and a few filled
shapes; the first shape is the object clicked):

* ``encoder_s``: seconds per ``set_image`` (the per-episode cost; grabcut only stores the image);
* ``decoder_s``: seconds per ``predict`` with 1..C clicks and the previous logits fed back (the
  per-step cost), also broken down per click count;
* ``many_K_looped_s`` / ``many_K_batched_s``: seconds per ``predict_many`` call with K prompt sets
  of the same structure (tree search), looped vs one batched decoder call (grabcut: looped only),
  with the largest fraction of mask pixels that differ between the two;
* memory: ``peak_rss_delta_mb`` (process RSS sampled every 10 ms during the backend's run, minus
  the RSS before it was built: model + activations), ``tracemalloc_peak_mb`` (Python-heap
  allocations during one untimed episode: set_image, C predicts, one predict_many of the
  largest K; torch tensor storage is not counted there), ``cuda_peak_mb`` on CUDA.

On a CPU shared with other jobs, torch's OpenMP threads contend (measured here: a tiny-SAM decoder
call took 0.14 s with 1 thread but 1.2 s with 2 threads while other processes kept the load
at ~4-8): compare backends within one run, and try ``--threads 1`` on a busy machine.

Warm-up (one set_image and a few predicts on a separate image) runs before any timing. Tiny
models have random weights: their timings are real, their masks are meaningless. Writes a JSON
(``--out``, default ``results/segmenters.json``) and a bar chart PNG next to it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

if __package__ in (None, ""):  # `python benchmarks/segmenters.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from segenv.segmenters import Prompt, make_segmenter

TINY_BACKENDS = ("sam-tiny", "hf-sam-tiny", "hf-sam_hq-tiny", "hf-sam2-tiny", "hf-sam3_tracker-tiny")


@dataclass
class BenchArgs:
    backends: list[str] = field(default_factory=lambda: ["grabcut", *TINY_BACKENDS])
    sam: list[str] = field(default_factory=list)  # real segment-anything .pth checkpoints
    hf: list[str] = field(default_factory=list)  # real transformers SAM / SAM-HQ / SAM 2 folders
    images: int = 3
    size: int = 512
    clicks: int = 5
    ks: list[int] = field(default_factory=lambda: [1, 4, 8])
    repeats: int = 3
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 = torch's default (one per core)
    seed: int = 0
    out: str = "results/segmenters.json"
    quick: bool = False


def parse_args(argv: Optional[Sequence[str]] = None) -> BenchArgs:
    d = BenchArgs()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default=",".join(d.backends), help="comma list from grabcut," + ",".join(TINY_BACKENDS) + " ('' for none)")
    p.add_argument("--sam", action="append", default=[], metavar="PATH", help="a segment-anything .pth (repeatable)")
    p.add_argument("--hf", action="append", default=[], metavar="PATH", help="a transformers SAM-family folder (repeatable)")
    p.add_argument("--images", type=int, default=d.images)
    p.add_argument("--size", type=int, default=d.size, help="side of the synthetic square images")
    p.add_argument("--clicks", type=int, default=d.clicks)
    p.add_argument("--ks", default=",".join(map(str, d.ks)), help="predict_many sizes, comma list")
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed repeats of each predict_many call")
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=d.threads, help="torch.set_num_threads (0: torch default)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=d.out)
    p.add_argument("--quick", action="store_true", help="1 image, 3 clicks, K=1,4, 1 repeat")
    a = p.parse_args(argv)
    args = BenchArgs(
        backends=[b for b in a.backends.split(",") if b],
        sam=a.sam,
        hf=a.hf,
        images=a.images,
        size=a.size,
        clicks=a.clicks,
        ks=[int(k) for k in a.ks.split(",") if k],
        repeats=a.repeats,
        device=a.device,
        threads=a.threads,
        seed=a.seed,
        out=a.out,
        quick=a.quick,
    )
    if args.quick:
        args.images, args.clicks, args.ks, args.repeats = 1, 3, [1, 4], 1
    unknown = [b for b in args.backends if b not in ("grabcut", *TINY_BACKENDS)]
    if unknown:
        p.error(f"unknown backends {unknown}; choose from grabcut,{','.join(TINY_BACKENDS)}")
    return args


# ------------------------------------------------------------------------------ data
def synthetic_images(n: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (RGB uint8 image, bool mask of the first shape) pairs: gradient + noise + 3-5 shapes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        base = rng.uniform(40, 200, 3)
        img = np.stack([base[c] + 50 * (xx if c % 2 else yy) for c in range(3)], -1)
        img += rng.normal(0, 8, img.shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        target = None
        for j in range(int(rng.integers(3, 6))):
            m = np.zeros((size, size), np.uint8)
            cx, cy = rng.integers(size // 6, size - size // 6, 2)
            r = int(rng.integers(size // 12, size // 5))
            kind = j % 3
            if kind == 0:
                cv2.circle(m, (int(cx), int(cy)), r, 1, -1)
            elif kind == 1:
                cv2.rectangle(m, (int(cx - r), int(cy - r // 2)), (int(cx + r), int(cy + r // 2)), 1, -1)
            else:
                pts = np.array([[cx, cy - r], [cx + r, cy + r], [cx - r, cy + r]], np.int32)
                cv2.fillPoly(m, [pts], 1)
            img[m > 0] = rng.integers(0, 256, 3).astype(np.uint8)
            if target is None:
                target = m > 0
            else:
                target &= ~(m > 0)  # later shapes occlude the target
        out.append((img, target))
    return out


def click_sequence(mask: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """First click at the object's most interior pixel, then alternating negatives / positives."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(dist.argmax()), dist.shape)
    pts, labels = [(x, y)], [1]
    fg, bg = np.argwhere(mask), np.argwhere(~mask)
    for i in range(1, n):
        pool, lab = (bg, 0) if i % 2 else (fg, 1)
        if len(pool) == 0:
            pool, lab = fg if lab == 0 else bg, 1 - lab
        yy, xx = pool[int(rng.integers(len(pool)))]
        pts.append((xx, yy))
        labels.append(lab)
    return np.array(pts, np.float32), np.array(labels, np.int64)


# ------------------------------------------------------------------------------ backends
def backend_factories(args: BenchArgs) -> list[tuple[str, Callable[[], Any]]]:
    from segenv.segmenters import tiny

    def hf(model_fn):
        from segenv.segmenters.hf_sam import HFSamSegmenter

        return lambda: HFSamSegmenter(model=model_fn(), device=args.device)

    def sam_tiny():
        from segenv.segmenters.sam import SamSegmenter

        return SamSegmenter(model=tiny.tiny_sam(args.seed), device=args.device)

    table: dict[str, Callable[[], Any]] = {
        "grabcut": lambda: make_segmenter("grabcut"),
        "sam-tiny": sam_tiny,
        "hf-sam-tiny": hf(lambda: tiny.tiny_hf_sam(args.seed)),
        "hf-sam_hq-tiny": hf(lambda: tiny.tiny_hf_sam_hq(args.seed)),
        "hf-sam2-tiny": hf(lambda: tiny.tiny_hf_sam2(args.seed)),
        "hf-sam3_tracker-tiny": hf(lambda: tiny.tiny_hf_sam3_tracker(args.seed, image_size=1008)),
    }
    out = [(name, table[name]) for name in args.backends]
    for path in args.sam:
        out.append((f"sam:{Path(path).name}", lambda p=path: make_segmenter(f"sam:{p}", device=args.device)))
    for path in args.hf:
        out.append((f"hf:{Path(path.rstrip('/')).name}", lambda p=path: make_segmenter(f"hf:{p}", device=args.device)))
    return out


class RssSampler:
    """Peak resident set size of this process, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except ImportError:  # Linux fallback
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> "RssSampler":
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _sync(seg: Any) -> None:
    dev = str(getattr(seg, "device", "cpu"))
    if dev.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bench_backend(name: str, factory: Callable[[], Any], data, args: BenchArgs) -> dict:
    torch = None
    try:
        import torch  # noqa: F811
    except ImportError:
        pass
    gc.collect()
    rss0 = RssSampler.rss()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rng = np.random.default_rng(args.seed)
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        seg = factory()
        build_s = time.perf_counter() - t0
        batchable = hasattr(seg, "batch_many")
        # warm-up on a separate image
        warm_img, warm_mask = synthetic_images(1, args.size, args.seed + 999)[0]
        seg.set_image(warm_img)
        wp, wl = click_sequence(warm_mask, 3, rng)
        prev = None
        for k in range(1, 4):
            _, prev = seg.predict(wp[:k], wl[:k], None, prev)
        if batchable:
            for mode in (False, True):
                seg.batch_many = mode
                seg.predict_many([Prompt(wp[:2], wl[:2], None, prev)] * 2)
        _sync(seg)
        enc_times, dec_times = [], {k: [] for k in range(1, args.clicks + 1)}
        many: dict[str, Any] = {}
        for img, mask in data:
            t = time.perf_counter()
            seg.set_image(img)
            _sync(seg)
            enc_times.append(time.perf_counter() - t)
            pts, labels = click_sequence(mask, args.clicks, rng)
            prev = None
            for k in range(1, args.clicks + 1):
                t = time.perf_counter()
                _, prev = seg.predict(pts[:k], labels[:k], None, prev)
                _sync(seg)
                dec_times[k].append(time.perf_counter() - t)
            # predict_many: K candidate next clicks on top of the first 2 clicks (same structure)
            base_p, base_l = pts[:2], labels[:2]
            for K in args.ks:
                cand = np.argwhere(mask)[rng.integers(0, int(mask.sum()), K)][:, ::-1].astype(np.float32)
                prompts = [Prompt(np.vstack([base_p, c[None]]), np.append(base_l, 1), None, prev) for c in cand]
                modes = [False, True] if batchable else [False]
                res = {}
                for mode in modes:
                    if batchable:
                        seg.batch_many = mode
                    ts = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        r = seg.predict_many(prompts)
                        _sync(seg)
                        ts.append(time.perf_counter() - t)
                    res[mode] = r
                    key = f"many_{K}_{'batched' if mode else 'looped'}_s"
                    many.setdefault(key, []).append(float(np.median(ts)))
                if len(res) == 2:
                    diff = max(float((a[0] != b[0]).mean()) for a, b in zip(res[False], res[True]))
                    many.setdefault(f"many_{K}_max_pixel_diff", []).append(diff)
            if batchable:
                seg.batch_many = "auto"
        # Python-heap peak (tracemalloc slows Python code, so it is off while timing): one
        # set_image, an episode of predicts and one predict_many of the largest K
        img, mask = data[0]
        pts, labels = click_sequence(mask, args.clicks, rng)
        tracemalloc.start()
        seg.set_image(img)
        prev = None
        for k in range(1, args.clicks + 1):
            _, prev = seg.predict(pts[:k], labels[:k], None, prev)
        seg.predict_many([Prompt(pts[:2], labels[:2], None, prev)] * max(args.ks))
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    row: dict[str, Any] = {
        "backend": name,
        "device": str(getattr(seg, "device", "cpu")),
        "build_s": build_s,
        "encoder_s": float(np.mean(enc_times)),
        "decoder_s": float(np.mean([t for v in dec_times.values() for t in v])),
        "decoder_s_per_clicks": {str(k): float(np.mean(v)) for k, v in dec_times.items()},
        "encoder_calls": getattr(seg, "encoder_calls", None),
        "peak_rss_delta_mb": (sampler.peak - rss0) / 2**20,
        "tracemalloc_peak_mb": py_peak / 2**20,
        "cuda_peak_mb": (torch.cuda.max_memory_allocated() / 2**20) if torch is not None and torch.cuda.is_available() else None,
    }
    for key, vals in many.items():
        row[key] = float(np.max(vals) if key.endswith("pixel_diff") else np.mean(vals))
    del seg
    gc.collect()
    return row


# ------------------------------------------------------------------------------ report
def format_table(rows: list[dict], ks: Sequence[int]) -> str:
    cols = ["backend", "device", "encoder_s", "decoder_s"]
    for K in ks:
        cols += [f"many_{K}_looped_s", f"many_{K}_batched_s"]
    cols += ["peak_rss_delta_mb", "tracemalloc_peak_mb", "cuda_peak_mb"]
    short = {c: c.replace("_s", "").replace("many_", "K").replace("_looped", " loop").replace("_batched", " batch") for c in cols}
    short.update(peak_rss_delta_mb="rss+MB", tracemalloc_peak_mb="pyheapMB", cuda_peak_mb="cudaMB", encoder_s="enc s", decoder_s="dec s")

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    table = [[short[c] for c in cols]] + [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(cell.rjust(w) if j else cell.ljust(w) for j, (cell, w) in enumerate(zip(row, widths))) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(rows: list[dict], ks: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["backend"] for r in rows]
    x = np.arange(len(rows))
    kmax = max(ks)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].bar(x, [r["encoder_s"] for r in rows], color="tab:blue")
    axes[0].set_title("encoder: s per image (set_image)")
    axes[1].bar(x, [r["decoder_s"] for r in rows], color="tab:orange")
    axes[1].set_title("decoder: s per click (predict)")
    looped = [r.get(f"many_{kmax}_looped_s") or 0 for r in rows]
    batched = [r.get(f"many_{kmax}_batched_s") or 0 for r in rows]
    axes[2].bar(x - 0.2, looped, 0.4, label="looped")
    axes[2].bar(x + 0.2, batched, 0.4, label="batched")
    axes[2].set_title(f"predict_many K={kmax}: s per call")
    axes[2].legend()
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    data = synthetic_images(args.images, args.size, args.seed)
    rows = []
    for name, factory in backend_factories(args):
        print(f"[segmenters] {name} ...", flush=True)
        try:
            rows.append(bench_backend(name, factory, data, args))
        except (ImportError, FileNotFoundError, ValueError) as exc:
            print(f"[segmenters] skipped {name}: {type(exc).__name__}: {exc}", flush=True)
    try:
        import torch

        env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        env = {"torch": None}
    env.update(cpu_count=os.cpu_count(), loadavg_1min=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    result = {"args": asdict(args), "env": env, "rows": rows}
    print(format_table(rows, args.ks))
    print(f"(image {args.size}x{args.size}, {args.images} images, {args.clicks} clicks, env {env})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if rows:
        plot(rows, args.ks, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
