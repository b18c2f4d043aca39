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
from ..errors import CmalignError
from ..labels import LabelSet
from .base import Method

if TYPE_CHECKING:
    from typing import Self

# floor for log-probabilities: an annotator's zero is "very unlikely", not "impossible"
PROB_FLOOR = 1e-30


@dataclass(frozen=True, eq=False)
class Evidence:
    """Per text: unit embedding ``X[i]``, annotator probabilities ``A[i]`` over the label set and
    the annotator's answer as a label index ``answer[i]``."""

    X: np.ndarray
    A: np.ndarray
    answer: np.ndarray

    @property
    def log_a(self) -> np.ndarray:
        return np.log(np.maximum(self.A, PROB_FLOOR))


def gather(texts: Sequence[str], labels: LabelSet, annotator: Annotator, encoder: SentenceEncoder,
           answers: Sequence[Annotation] | None = None) -> Evidence:
    """Embed ``texts`` and collect the annotator's probabilities (asking it unless ``answers`` given)."""
    if answers is None:
        if not annotator.has_scores:
            raise CmalignError(f"annotator {annotator.identity!r} gives no per-label scores; the "
                               "score-based methods need one that does (use the cm rules instead)")
        answers = annotator.annotate(texts, labels)
    if any(a.scores is None for a in answers):
        raise CmalignError("the answers carry no per-label scores; the score-based methods need an "
                           "annotator that gives them (use the cm rules instead)")
    A = np.stack([a.scores for a in answers]).astype(np.float64)
    answer = np.array([labels.index(a.label) for a in answers])
    return Evidence(X=encoder.encode(texts).astype(np.float64), A=A, answer=answer)


class ScoredMethod(Method):
    """A method that turns evidence (embeddings and the annotator's scores) into ``p(y|x)``.

    Subclasses implement :meth:`fit_evidence` and :meth:`proba_evidence`, pure array code that
    the tests drive with synthetic evidence.
    """

    needs_scores = True
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
