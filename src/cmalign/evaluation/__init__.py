"""Scoring and the paper's benchmark protocol."""

from .bench import MethodResult, RunResult, run_bench, run_protocol, run_strategies
from .metrics import accuracy
from .table import format_table

__all__ = ["MethodResult", "RunResult", "accuracy", "format_table", "run_bench", "run_protocol", "run_strategies"]
