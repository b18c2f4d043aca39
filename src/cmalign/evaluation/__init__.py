"""Scoring and the paper's benchmark protocol."""

from .bench import MethodResult, RunResult, run_protocol
from .metrics import accuracy

__all__ = ["MethodResult", "RunResult", "accuracy", "run_protocol"]
