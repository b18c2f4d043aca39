"""What the bank and the review say, as tables: the annotator's confusions, the discrepancy
heatmap's cells and one row per label. Pure functions over the files read; nothing drawn here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..method.bank import MemoryBank
from .readers import LabelledSummary, ReviewSummary

HEATMAP_ROWS, HEATMAP_COLUMNS = 25, 30  # readable at 150 labels; the rest is one summary row/column
WEAKEST = 10


@dataclass(frozen=True)
class Confusion:
    """The annotator said ``answer`` and the user meant ``label``, ``count`` times (``share`` of ``answer``)."""

    answer: str
    label: str
    count: int
    share: float
    in_label_set: bool


def confusions(bank: MemoryBank) -> list[Confusion]:
    """Every (answer, label) pair of the bank where the two differ, largest count first."""
    pairs = [Confusion(e.response, label, n, n / e.total, e.in_label_set)
             for e in bank.entries.values() for label, n in e.counts if label != e.response]
    return sorted(pairs, key=lambda c: (-c.count, -c.share, c.answer, c.label))


@dataclass(frozen=True)
class Heatmap:
    """Row-normalised shares, answer keys (rows) x the labels the user meant (columns).

    Column ``i`` is row ``i``'s own label whenever that row is a label, so the cells where the user
    meant what the annotator said form the diagonal. The last row sums the answers not shown, the
    last column the labels not shown, when there are any.
    """

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    shares: np.ndarray
    out_of_set: tuple[bool, ...]
    other_rows: int
    other_columns: int


def heatmap(bank: MemoryBank, max_rows: int = HEATMAP_ROWS, max_columns: int = HEATMAP_COLUMNS) -> Heatmap | None:
    """The answers with the most samples the user labelled otherwise, and where those went; None
    when the annotator's answer was always the user's label.

    The columns shown are the labels that got the most of the shown rows' samples, except that each
    shown row's own label is always one (while there is room) so that the diagonal is complete.
    They are placed on the diagonal first; a row that is not a label, and the columns after the
    last row, take the other chosen labels by mass.
    """
    def off(entry) -> int:
        return entry.total - dict(entry.counts).get(entry.response, 0)

    confused = sorted((e for e in bank.entries.values() if off(e)), key=lambda e: (-off(e), -e.total, e.response))
    if not confused:
        return None
    shown, rest = confused[:max_rows], confused[max_rows:]
    mass: Counter[str] = Counter()
    for entry in shown:  # ties in mass go to the label a higher row reaches first (sorted is stable)
        if entry.in_label_set:
            mass[entry.response] += 0
        mass.update(dict(entry.counts))
    by_mass = [label for label, _ in sorted(mass.items(), key=lambda kv: -kv[1])]
    own = [e.response for e in shown if e.in_label_set][:max_columns]
    own_set = set(own)
    others = [label for label in by_mass if label not in own_set][:max_columns - len(own)]
    fill = iter(others)
    columns = []
    for entry in shown:
        label = entry.response if entry.response in own_set else next(fill, None)
        if label is not None:
            columns.append(label)
    columns.extend(fill)
    index = {label: j for j, label in enumerate(columns)}
    other_columns = len(bank.labels) - len(columns)
    width = len(columns) + (other_columns > 0)
    counts = np.zeros((len(shown) + bool(rest), width))
    for i, entry in enumerate(shown):
        for label, n in entry.counts:
            counts[i, index.get(label, width - 1)] += n
    for entry in rest:
        for label, n in entry.counts:
            counts[-1, index.get(label, width - 1)] += n
    rows = [e.response for e in shown] + ([f"({len(rest)} other answers)"] if rest else [])
    if other_columns:
        columns.append(f"({other_columns} other labels)")
    return Heatmap(tuple(rows), tuple(columns), counts / counts.sum(axis=1, keepdims=True),
                   tuple(not e.in_label_set for e in shown) + ((False,) if rest else ()), len(rest), other_columns)


@dataclass(frozen=True)
class LabelRow:
    label: str
    samples: int  # preference samples the user gave this label
    annotator_agreed: int  # of those, how many the annotator answered with the label itself
    held_out: int  # preference rows of the review with this label
    held_out_correct: int  # of those, predicted right out of fold
    labelled: int | None  # labelled items that got it (None: no labelled file)

    @property
    def held_out_accuracy(self) -> float | None:
        return self.held_out_correct / self.held_out if self.held_out else None


def label_rows(bank: MemoryBank, review: ReviewSummary | None, labelled: LabelledSummary | None) -> list[LabelRow]:
    """One row per label, weakest first: lowest out-of-fold accuracy (with a review), else the
    annotator's agreement with the user in the bank; labels with no preference sample last."""
    samples, agreed = Counter(), Counter()
    for entry in bank.entries.values():
        for label, n in entry.counts:
            samples[label] += n
            agreed[label] += n if label == entry.response else 0
    held, right = Counter(), Counter()
    for row in review.preference if review else ():
        held[row.label] += 1
        right[row.label] += row.suggested == row.label
    rows = [LabelRow(label, samples[label], agreed[label], held[label], right[label],
                     None if labelled is None else labelled.per_label[label]) for label in bank.labels]

    def weakness(r: LabelRow) -> tuple:
        score = r.held_out_accuracy if review else (r.annotator_agreed / r.samples if r.samples else None)
        return (score is None, score if score is not None else 0.0, -r.samples, bank.labels.index(r.label))

    return sorted(rows, key=weakness)


def weakest_labels(rows: Sequence[LabelRow], held_out: bool, n: int = WEAKEST) -> list[LabelRow]:
    """The first ``n`` of :func:`label_rows` that have a score: held-out rows (``held_out``) or samples."""
    return [r for r in rows if (r.held_out if held_out else r.samples)][:n]
