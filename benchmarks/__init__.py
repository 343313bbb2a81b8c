"""Benchmarks: one rollout harness for every agent (``python benchmarks/run.py --agent ...``)."""
