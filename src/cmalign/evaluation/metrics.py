"""Scores. Predictions and gold labels are canonical labels (see :mod:`cmalign.labels`), so exact
match here is the paper's metric without its case-sensitivity defect: an answer outside the label
set (None) is simply wrong."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ECE_BINS = 15  # equal-width bins of confidence: the bench's ECE and the report's reliability diagram


def accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("nothing to score")
    return sum(p is not None and p == g for p, g in zip(predicted, gold)) / len(gold)


class Calibration:
    """Confidence against correctness in ``bins`` equal-width bins: what a reliability diagram draws
    and what the expected calibration error sums.

    The bins are [0, 1/bins], then (low, high] up to 1. Items come all at once (:meth:`of`) or one
    at a time (:meth:`add`, for a file streamed line by line), into the same bins; per bin are kept
    the number of items, the sum of their confidences and the number right.
    """

    def __init__(self, bins: int = ECE_BINS) -> None:
        if bins < 1:
            raise ValueError(f"{bins} bins: at least 1")
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        self.count = np.zeros(bins, dtype=np.int64)
        self.confidence = np.zeros(bins)
        self.correct = np.zeros(bins, dtype=np.int64)

    @classmethod
    def of(cls, confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> Calibration:
        calibration = cls(bins)
        confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
        if confidence.shape != correct.shape or confidence.ndim != 1:
            raise ValueError(f"{confidence.shape} confidences for {correct.shape} outcomes")
        where = calibration._bin(confidence)
        for b in range(bins):
            # a bin's items summed as one array, in their order: the same float sum as their mean
            in_bin = where == b
            calibration.count[b] = in_bin.sum()
            calibration.confidence[b] = confidence[in_bin].sum()
            calibration.correct[b] = correct[in_bin].sum()
        return calibration

    def add(self, confidence: float, correct: bool) -> None:
        b = int(self._bin(np.array([confidence], dtype=float))[0])
        self.count[b] += 1
        self.confidence[b] += confidence
        self.correct[b] += bool(correct)

    def _bin(self, confidence: np.ndarray) -> np.ndarray:
        if not np.all((confidence >= 0.0) & (confidence <= 1.0)):  # NaN fails both
            bad = confidence[~((confidence >= 0.0) & (confidence <= 1.0))][0]
            raise ValueError(f"a confidence of {bad}: must be a number from 0 to 1")
        # the first edge i with confidence <= edges[i] closes bin i - 1: bins are (low, high]
        return np.maximum(np.searchsorted(self.edges, confidence, side="left") - 1, 0)

    @property
    def n(self) -> int:
        return int(self.count.sum())

    @property
    def accuracy(self) -> float:
        return float(self.correct.sum() / self.n)

    @property
    def mean_confidence(self) -> float:
        return float(self.confidence.sum() / self.n)

    @property
    def ece(self) -> float:
        """The mean over bins, weighted by their size, of |accuracy - mean confidence|; 0 is
        perfectly calibrated."""
        ece = 0.0
        for count, confidence, correct in zip(self.count, self.confidence, self.correct):
            if count:
                ece += count / self.n * abs(correct / count - confidence / count)
        return float(ece)


def expected_calibration_error(probs: np.ndarray, gold: Sequence[int], bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width bins of confidence (the top probability): the mean, weighted by
    bin size, of |accuracy - mean confidence| within each bin (see :class:`Calibration`). 0 is
    perfectly calibrated."""
    probs = np.asarray(probs)
    return Calibration.of(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(gold), bins).ece
