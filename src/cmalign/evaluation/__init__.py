"""Scoring and the paper's benchmark protocol."""

from .bench import MethodResult, RunResult, run_protocol, run_strategies
from .metrics import accuracy

__all__ = ["MethodResult", "RunResult", "accuracy", "run_protocol", "run_strategies"]
