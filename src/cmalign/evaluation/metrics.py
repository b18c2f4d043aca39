"""Scores. Predictions and gold labels are canonical labels (see :mod:`cmalign.labels`), so exact
match here is the paper's metric without its case-sensitivity defect: an answer outside the label
set (None) is simply wrong."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("nothing to score")
    return sum(p is not None and p == g for p, g in zip(predicted, gold)) / len(gold)


def expected_calibration_error(probs: np.ndarray, gold: Sequence[int], bins: int = 15) -> float:
    """ECE over ``bins`` equal-width bins of confidence (the top probability): the mean, weighted by
    bin size, of |accuracy - mean confidence| within each bin. 0 is perfectly calibrated."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(gold)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
