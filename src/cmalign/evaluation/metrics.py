"""Scores. Predictions and gold labels are canonical labels (see :mod:`cmalign.labels`), so exact
match here is the paper's metric without its case-sensitivity defect: an answer outside the label
set (None) is simply wrong."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("nothing to score")
    return sum(p is not None and p == g for p, g in zip(predicted, gold)) / len(gold)
