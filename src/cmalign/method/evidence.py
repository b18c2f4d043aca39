"""What the score-based methods see of a batch of texts: their embeddings and the annotator's
probabilities. Gathered once per batch so each method reuses it instead of asking again."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..annotators.base import Annotation, Annotator
from ..encoder import SentenceEncoder
from ..labels import LabelSet
from .base import Method

if TYPE_CHECKING:
    from typing import Self

# floor for log-probabilities: an annotator's zero is "very unlikely", not "impossible"
PROB_FLOOR = 1e-30


@dataclass(frozen=True, eq=False)
class Evidence:
    """Per text: unit embedding ``X[i]``, the annotator's probabilities ``A[i]`` over the label set
    and its answer as a label index ``answer[i]`` (-1: an answer outside the label set)."""

    X: np.ndarray
    A: np.ndarray
    answer: np.ndarray

    @property
    def log_a(self) -> np.ndarray:
        return np.log(np.maximum(self.A, PROB_FLOOR))


def answer_distribution(answer: Annotation, labels: LabelSet) -> np.ndarray:
    """What an answer without scores says, as a distribution over the label set: its votes (the
    answer alone, or each of a ``consistent`` strategy's answers) plus one vote spread evenly over
    every label, ``(votes + 1/C) / (n + 1)``. An answer outside the set adds no vote, so a reply
    that names no label is the even spread. How far to trust it, and what the user meant by each
    answer, the methods learn from the preference samples (``cm_marg``'s transition ``T(y|r)``,
    ``cm_stack``'s weight for this evidence)."""
    C = len(labels)
    counts = np.zeros(C)
    for label in answer.votes or (answer.label,):
        if label is not None:
            counts[labels.index(label)] += 1.0
    return (counts + 1.0 / C) / (counts.sum() + 1.0)


def gather(texts: Sequence[str], labels: LabelSet, annotator: Annotator, encoder: SentenceEncoder,
           answers: Sequence[Annotation] | None = None) -> Evidence:
    """Embed ``texts`` and collect the annotator's probabilities (asking it unless ``answers`` given):
    its scores where it gives them, else :func:`answer_distribution` of its answer."""
    if answers is None:
        answers = annotator.annotate(texts, labels)
    A = np.stack([a.scores if a.scores is not None else answer_distribution(a, labels)
                  for a in answers]).astype(np.float64)
    answer = np.array([labels.index(a.label) if a.label is not None else -1 for a in answers], dtype=np.int64)
    return Evidence(X=encoder.encode(texts).astype(np.float64), A=A, answer=answer)


class ScoredMethod(Method):
    """A method that turns evidence (embeddings and the annotator's scores) into ``p(y|x)``.

    Subclasses implement :meth:`fit_evidence` and :meth:`proba_evidence`, pure array code that
    the tests drive with synthetic evidence.
    """

    uses_encoder = True

    def __init__(self, annotator: Annotator | None, *, encoder: SentenceEncoder | None = None) -> None:
        self.annotator = annotator
        self.encoder = encoder

    def _fit(self, texts: list[str], y: np.ndarray, answers: Sequence[Annotation] | None) -> None:
        self.fit_evidence(gather(texts, self.label_set_, self.annotator, self.encoder_, answers), y,
                          self.label_set_)

    def _proba(self, texts: list[str], answers: Sequence[Annotation] | None) -> np.ndarray:
        return self.proba_evidence(gather(texts, self.label_set_, self.annotator, self.encoder_, answers))

    def _adapt(self, texts: list[str], answers: Sequence[Annotation] | None) -> None:
        self.adapt_evidence(gather(texts, self.label_set_, self.annotator, self.encoder_, answers))

    def adapt_evidence(self, ev: Evidence) -> Self:
        """Learn from unlabelled texts' evidence (transductive methods implement it)."""
        raise NotImplementedError

    @abstractmethod
    def fit_evidence(self, ev: Evidence, y: np.ndarray, labels: LabelSet) -> Self:
        """Fit on the preference samples' evidence and their label indices (sets ``label_set_``)."""

    @abstractmethod
    def proba_evidence(self, ev: Evidence) -> np.ndarray:
        """p(y|x), shape (items, labels), rows summing to 1."""

    def _set_labels(self, labels: LabelSet) -> None:
        self.label_set_ = labels
        self.classes_ = labels.labels
