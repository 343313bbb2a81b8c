"""Sharded evaluation: each process (a torchrun rank) runs its part of the episodes; the last to finish merges.

Process ``shard`` of ``num_shards`` runs the episodes ``k`` with ``k % num_shards == shard`` and
writes them as a run of its own, ``OUT.shard-RRR-of-NNN.json`` (+ ``.episodes.jsonl``, resumable
like any run). When its part is done it takes ``OUT.merge.lock`` and, if every part's result is
there, merges: the episodes of all parts, sorted by episode number, become ``OUT.episodes.jsonl``
and ``OUT`` is summarised from them exactly as a one-process run is
(:func:`agents.evaluate.build_summary`), so the merged result equals one process's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def shard_path(out: Path, shard: int, num_shards: int) -> Path:
    """``OUT``'s result file for one shard."""
    return out.with_name(f"{out.stem}.shard-{shard:03d}-of-{num_shards:03d}{out.suffix}")


def merge_shards(args, out: Path) -> dict:
    """Merge the shards of ``out`` when all are done (module docstring); else return this shard's result."""
    from filelock import FileLock

    from .evaluate import RUN_IDENTITY, _load_done, build_summary, format_table, plot_curve

    n = args.num_shards
    parts = [shard_path(out, r, n) for r in range(n)]
    identity = {k: getattr(args, k) for k in RUN_IDENTITY}

    def finished(p: Path) -> bool:  # a part of THIS run (a stale one with other arguments does not count)
        if not p.exists():
            return False
        made = json.loads(p.read_text()).get("args", {})
        return all(made.get(k) == v for k, v in identity.items()) and made.get("episodes") == args.episodes

    with FileLock(str(out.with_suffix(".merge.lock"))):
        mine = json.loads(parts[args.shard].read_text())
        if not all(finished(p) for p in parts):
            waiting = [r for r, p in enumerate(parts) if not finished(p)]
            log.warning("shard %d/%d done; shards %s still running: the last to finish writes %s", args.shard, n,
                        waiting, out)
            return mine
        results = [json.loads(p.read_text()) for p in parts]
        episodes, skipped = {}, {}
        for p in parts:
            done, skips = _load_done(p.with_suffix(".episodes.jsonl"))
            episodes.update(done)
            skipped.update(skips)
        lines = [json.dumps({"episode": k, **episodes[k].to_dict()}) for k in sorted(episodes)]
        lines += [json.dumps({"episode": k, "skipped": skipped[k]}) for k in sorted(skipped)]
        out.with_suffix(".episodes.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
        meta = {"split": results[0]["split"], "segmenter": results[0]["segmenter"]}
        skip_empty = results[0]["empty_targets"] == "skip"
        summary = build_summary(args, meta, [episodes[k] for k in sorted(episodes)],
                                [skipped[k] for k in sorted(skipped)], max(r["wall_seconds"] for r in results), skip_empty)
        summary["shards"] = n
        summary["args"] = {**summary["args"], "shard": None}  # the merged run is every shard's
        out.write_text(json.dumps(summary, indent=2))
        plot_curve(summary, out.with_suffix(".png"))
    print(format_table(summary))
    print(f"merged {n} shards into {out}")
    return summary


__all__ = ["merge_shards", "shard_path"]
