"""agents: who acts in segenv: the click oracle, baselines, the MLLM policy and its training."""

from .base import Agent, STOP
from .oracle import OracleAgent
from .baselines import RandomAgent

__all__ = ["Agent", "OracleAgent", "RandomAgent", "STOP"]
