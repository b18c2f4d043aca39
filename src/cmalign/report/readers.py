"""The report's inputs, read and checked: a labelled file streamed into counts, a review file read
back into :class:`~cmalign.review.ReviewRow`, a bench file into :class:`BenchRun`.

Each reader refuses, as one :class:`DataError` naming the file and the line, what the page could
not show honestly: a label outside the bank's label set, a probability that is not a number from 0
to 1 (NaN and infinity included), a count or seed that is not a whole number in range.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import json_lines
from ..errors import DataError
from ..evaluation.metrics import Calibration
from ..labels import LabelSet
from ..method.bank import MemoryBank
from ..review import ReviewRow, is_probability

TOP_REVIEW = 20  # review rows the page shows
HISTOGRAM_BINS = 50
LARGEST = 2**63 - 1  # a seed or a count past int64 is no run's


def _probability(value: Any, name: str, path: Path, line: int, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if not is_probability(value):
        raise DataError(f"{name!r} must be a number from 0 to 1, not {value!r}", path, line)
    return float(value)


def _label(value: Any, name: str, labels: LabelSet, path: Path, line: int) -> str:
    if not isinstance(value, str) or value not in labels:
        raise DataError(f"{name} {value!r} is not one of the bank's labels (a file for another bank?)", path, line)
    return value


def _whole(value: Any, name: str, path: Path, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LARGEST:
        raise DataError(f"{name!r} must be a whole number from 0, not {value!r}", path, line)
    return value


@dataclass
class LabelledSummary:
    """What a labelled file (``cmalign annotate``'s output) says, as counts only.

    ``compared``: items with the annotator's label; ``changed``: those whose label differs from it.
    ``histogram``: items per confidence bin, split into (changed, kept); ``reliability``: against
    the gold field, for items that have one and a confidence.
    """

    n: int = 0
    methods: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    per_label: Counter = field(default_factory=Counter)
    compared: int = 0
    changed: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros((2, HISTOGRAM_BINS), dtype=np.int64))
    reliability: Calibration = field(default_factory=Calibration)
    gold: int = 0
    gold_correct: int = 0


def read_labelled(path: str | Path, labels: LabelSet, *, gold_field: str = "gold") -> LabelledSummary:
    """Stream a labelled JSONL file into a :class:`LabelledSummary` (memory does not grow with it)."""
    path, summary = Path(path), LabelledSummary()
    for line, row in json_lines(path):
        label = row.get("label")
        if label is not None:
            _label(label, "label", labels, path, line)
        confidence = _probability(row.get("confidence"), "confidence", path, line, optional=True)
        summary.n += 1
        summary.methods[str(row.get("method", "(none)"))] += 1
        summary.per_label[label] += 1
        if row.get("action") is not None:
            summary.actions[str(row["action"])] += 1
        changed = None
        if "annotator_label" in row:
            changed = label != row["annotator_label"]
            summary.compared += 1
            summary.changed += changed
        if confidence is not None:
            b = min(HISTOGRAM_BINS - 1, int(confidence * HISTOGRAM_BINS))
            summary.histogram[0 if changed else 1, b] += 1
        gold = row.get(gold_field)
        if isinstance(gold, str):
            right = label is not None and labels.canonical(gold) == label
            summary.gold += 1
            summary.gold_correct += right
            if confidence is not None:
                summary.reliability.add(confidence, right)
    if summary.n == 0:
        raise DataError("no labelled item in the file", path)
    return summary


@dataclass(frozen=True)
class ReviewSummary:
    preference: tuple[ReviewRow, ...]  # every preference sample: the held-out estimate
    top: tuple[ReviewRow, ...]  # the first rows by rank
    n_labelled: int

    def reliability(self) -> Calibration:
        return Calibration.of(np.array([row.confidence for row in self.preference]),
                              np.array([row.suggested == row.label for row in self.preference], dtype=bool))


def read_review(path: str | Path, bank: MemoryBank, *, top: int = TOP_REVIEW) -> ReviewSummary:
    """Read a review file, checking that it was written for ``bank`` (its preference rows are the
    bank's samples). Keeps the preference rows (as many as the bank has) and the ``top`` by rank."""
    path = Path(path)
    preference, n_labelled = [], 0
    best: list[tuple[int, int, ReviewRow]] = []  # a heap of the ``top`` lowest ranks, the highest on top
    for line, row in json_lines(path):
        try:
            rank, kind, number, text, reason = row["rank"], row["kind"], row["line"], row["text"], row["reason"]
            label, suggested = row["label"], row["suggested"]
            confidence, given = row["confidence"], row.get("given_probability")
        except KeyError as exc:
            raise DataError(f"no {exc.args[0]!r} field (a review line has rank, kind, line, text, label, "
                            "suggested, confidence, given_probability, reason)", path, line) from None
        if kind not in ("preference", "labelled"):
            raise DataError(f"kind {kind!r}: expected 'preference' or 'labelled'", path, line)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rank, number)):
            raise DataError("rank and line must be whole numbers", path, line)
        if not isinstance(text, str) or not isinstance(reason, str):
            raise DataError("text and reason must be strings", path, line)
        record = ReviewRow(rank, kind, number, text, _label(label, "label", bank.labels, path, line),
                           _label(suggested, "suggested", bank.labels, path, line),
                           _probability(confidence, "confidence", path, line),
                           _probability(given, "given_probability", path, line, optional=True), reason)
        if kind == "preference":
            preference.append(record)
        else:
            n_labelled += 1
        heapq.heappush(best, (-rank, -line, record))
        if len(best) > top:
            heapq.heappop(best)
    if len(preference) != bank.n_samples or (bank.samples and Counter((r.text, r.label) for r in preference)
                                             != Counter((s.text, s.label) for s in bank.samples)):
        raise DataError(f"its {len(preference)} preference rows are not the bank's {bank.n_samples} preference "
                        "samples: a review of another bank? ({=review} takes a review of this bank)", path)
    return ReviewSummary(tuple(preference), tuple(r for *_, r in sorted(best, reverse=True)), n_labelled)


@dataclass(frozen=True)
class BenchRun:
    """One line of a bench's JSON output: a (dataset, budget, seed) and each method's accuracy."""

    dataset: str
    budget: str
    seed: int
    n_preference: int
    n_eval: int
    accuracy: dict[str, float]


def _bench_run(row: dict, path: Path, line: int) -> BenchRun:
    try:
        dataset, budget, seed, methods = row["dataset"], row["budget"], row["seed"], row["methods"]
        n_preference, n_eval = row["n_preference"], row["n_eval"]
    except KeyError as exc:
        raise DataError(f"not a line of a bench's JSON output (no {exc.args[0]!r} field)", path, line) from None
    if not isinstance(dataset, str):
        raise DataError(f"'dataset' must be a name, not {dataset!r}", path, line)
    if isinstance(budget, bool) or not isinstance(budget, (str, int, float)) or (
            isinstance(budget, float) and not math.isfinite(budget)):
        raise DataError(f"'budget' must be a fraction or n=COUNT, not {budget!r}", path, line)
    if not isinstance(methods, dict) or not all(isinstance(m, dict) for m in methods.values()):
        raise DataError("'methods' must map each method's name to its results", path, line)
    accuracy = {}
    for name, result in methods.items():
        value = result.get("accuracy")
        if not is_probability(value):
            raise DataError(f"method {name!r}: 'accuracy' must be a number from 0 to 1, not {value!r}", path, line)
        accuracy[name] = float(value)
    return BenchRun(dataset, str(budget), _whole(seed, "seed", path, line),
                    _whole(n_preference, "n_preference", path, line), _whole(n_eval, "n_eval", path, line), accuracy)


def read_bench(path: str | Path) -> list[BenchRun]:
    path = Path(path)
    runs = [_bench_run(row, path, line) for line, row in json_lines(path)]
    if not runs:
        raise DataError("no bench run in the file", path)
    return runs
