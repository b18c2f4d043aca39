"""What a person should look at: the user's own labels that look wrong, and the least sure labels.

Two kinds of row, in one ranked file a person works through from the top:

- ``preference``: every preference sample of the bank, with the method's *out-of-fold* prediction for
  it (fitted without that sample, over repeated k-fold splits, probabilities averaged). A sample whose
  given label gets a low out-of-fold probability while the method consistently prefers another is
  likely mislabelled (the "self-confidence" ranking of confident learning, as cleanlab ranks label
  issues). Those where the method disagrees come first, least probable given label first; the rest
  go last, so the file also holds an honest held-out estimate of accuracy and calibration for
  ``cmalign report``.
- ``labelled``: the ``n`` least confident items of an ``annotate`` output (read streaming, a heap of
  ``n`` kept), least confident first, between the two.

Every row: ``rank``, ``kind``, ``line`` (a preference sample's 1-based position in the bank; a
labelled item's line in the annotate input), ``text``, ``label`` (the user's label; for a labelled
item, the method's), ``suggested`` (the out-of-fold prediction; for a labelled item, its label),
``confidence`` (the probability of ``suggested``), ``given_probability`` (the out-of-fold probability of
the user's label; preference rows only) and ``reason``.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .annotators.base import Annotator
from .encoder import SentenceEncoder
from .data.io import json_lines
from .errors import CmalignError, DataError
from .files import write_atomically
from .labels import LabelSet
from .method.bank import MemoryBank
from .method.registry import make_method


@dataclass(frozen=True)
class ReviewRow:
    """One line of a review file, most worth a look first: what :func:`write_review` writes and
    ``cmalign report`` reads back."""

    rank: int
    kind: str  # "preference" (a preference sample, held out) or "labelled" (an item the method labelled)
    line: int
    text: str
    label: str  # the user's label (preference) or the method's (labelled)
    suggested: str  # the out-of-fold prediction
    confidence: float  # the method's probability of ``suggested``
    given_probability: float | None  # out-of-fold probability of the user's label; preference rows only
    reason: str

    def __post_init__(self) -> None:
        # the review file is JSON: a NaN written there is no number for the next reader
        for name in ("confidence", "given_probability"):
            value = getattr(self, name)
            if not (value is None and name == "given_probability") and not is_probability(value):
                raise ValueError(f"{name} {value!r}: must be a number from 0 to 1")


def is_probability(value: object) -> bool:
    """A JSON number from 0 to 1 (not a bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def out_of_fold(method: str, annotator: Annotator, encoder: SentenceEncoder | None, texts: Sequence[str],
                y: Sequence[str], label_set: LabelSet, *, folds: int = 5, repeats: int = 2,
                seed: int = 0) -> np.ndarray:
    """p(label | text) for each sample from ``method`` fitted without it: ``repeats`` shuffled
    ``folds``-fold splits, averaged. Columns in ``label_set`` order. The annotator is asked about
    each text once."""
    texts, y = list(texts), list(y)
    if len(texts) < folds:
        raise DataError(f"{len(texts)} preference samples: a review needs at least {folds}")
    answers = annotator.annotate(texts, label_set)
    total = np.zeros((len(texts), len(label_set)))
    for repeat in range(repeats):
        order = np.random.default_rng([seed, repeat]).permutation(len(texts))
        for held in np.array_split(order, folds):
            train = np.setdiff1d(order, held)
            fitted = make_method(method, annotator, encoder).fit(
                [texts[i] for i in train], [y[i] for i in train], label_set=label_set,
                answers=[answers[i] for i in train])
            probs = fitted.predict_proba([texts[i] for i in held], answers=[answers[i] for i in held])
            columns = [label_set.index(c) for c in fitted.classes_]
            total[np.ix_(held, columns)] += probs
    return total / repeats


def preference_rows(bank: MemoryBank, probs: np.ndarray) -> tuple[list[ReviewRow], list[ReviewRow]]:
    """The bank's samples as review rows: (those whose out-of-fold prediction is another label, the
    least probable given label first; the others, the most probable first)."""
    labels = bank.labels
    flagged, agreed = [], []
    for i, sample in enumerate(bank.samples):
        if not np.isfinite(probs[i]).all():
            raise CmalignError(f"preference sample {i + 1}: the method's out-of-fold probabilities are not all "
                               "numbers (a state file holding NaN?): nothing to review")
        best = int(probs[i].argmax())
        given = round(float(probs[i, labels.index(sample.label)]), 4)
        suggested, confidence = labels.labels[best], round(float(probs[i, best]), 4)
        if suggested != sample.label:
            reason = f"out of fold the method prefers {suggested!r} ({confidence:.2f}) to the given label ({given:.2f})"
            flagged.append((given, ReviewRow(0, "preference", i + 1, sample.text, sample.label, suggested,
                                             confidence, given, reason)))
        else:
            agreed.append((-given, ReviewRow(0, "preference", i + 1, sample.text, sample.label, suggested,
                                             confidence, given, "agrees out of fold")))
    by_key = lambda pair: pair[0]  # noqa: E731  (stable: ties keep the bank's order)
    return [row for _, row in sorted(flagged, key=by_key)], [row for _, row in sorted(agreed, key=by_key)]


def least_confident(path: str | Path, n: int, labels: LabelSet) -> list[ReviewRow]:
    """The ``n`` least confident items of an ``annotate`` output made with a bank of ``labels``,
    least confident first. The file is read a line at a time; only the ``n`` are kept. A line
    that is not one such item is a :class:`DataError` naming it."""
    path = Path(path)
    heap: list[tuple[float, int, dict]] = []  # max-heap by confidence (negated)
    for number, row in json_lines(path):
        label = row.get("label")
        if not isinstance(label, str):
            raise DataError("not a labelled line (a JSON object with a \"label\")", path, number)
        if label not in labels:
            raise DataError(f"label {label!r} is not one of the bank's labels (labelled with another bank?)",
                            path, number)
        confidence = row.get("confidence")
        if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
            raise DataError("has no confidence (annotate it with a method that gives probabilities, "
                            "e.g. cm_best)", path, number)
        if not is_probability(confidence):
            raise DataError(f"confidence {confidence!r}: must be a number from 0 to 1", path, number)
        line = row.get("line", number)
        if not isinstance(line, int) or isinstance(line, bool) or line < 1:
            raise DataError(f"line {line!r}: must be a whole number from 1 (the item's line in the annotate "
                            "input)", path, number)
        if not isinstance(row.get("text", ""), str):
            raise DataError(f"text {row['text']!r}: must be a string", path, number)
        entry = (-float(confidence), -number, row | {"line": line})
        if len(heap) < n:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
    ordered = sorted(heap, key=lambda e: (-e[0], -e[1]))
    return [ReviewRow(0, "labelled", row["line"], row.get("text", ""), row["label"], row["label"], round(-conf, 4),
                      None, _why(row))
            for conf, _, row in ordered]


def _why(row: dict) -> str:
    answer = row.get("annotator_label")
    if answer is not None and answer != row["label"]:
        return f"low confidence; the annotator said {answer!r}"
    return "low confidence"


def ranked(flagged: list[ReviewRow], labelled: list[ReviewRow], agreed: list[ReviewRow]) -> list[ReviewRow]:
    """The review file's order: suspected wrong preference labels, doubtful labelled items, the rest."""
    rows = [*flagged, *labelled, *agreed]
    return [ReviewRow(**(asdict(row) | {"rank": rank})) for rank, row in enumerate(rows, start=1)]


def write_review(path: str | Path, rows: Sequence[ReviewRow]) -> None:
    """The review file (JSONL, one row a line, in rank order), written atomically."""
    def write(handle) -> None:
        for row in rows:
            handle.write((json.dumps(asdict(row), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))

    write_atomically(path, write)
