"""What the score-based variants see of a batch of texts: their embeddings and the annotator's
probabilities. Gathered once per batch so each variant reuses it instead of asking again."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..annotators.base import Annotation, Annotator
from ..annotators.embedding import EmbeddingAnnotator, SentenceEncoder
from ..errors import CmalignError
from ..labels import LabelSet

if TYPE_CHECKING:
    from typing import Self  # Python 3.11; only read by type checkers here

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


def encoder_of(annotator: Annotator, encoder: SentenceEncoder | None) -> SentenceEncoder:
    if encoder is not None:
        return encoder
    if isinstance(annotator, EmbeddingAnnotator):
        return annotator.encoder
    raise CmalignError("this method needs a sentence encoder: pass encoder=SentenceEncoder()")


def gather(texts: Sequence[str], labels: LabelSet, annotator: Annotator, encoder: SentenceEncoder,
           answers: Sequence[Annotation] | None = None) -> Evidence:
    """Embed ``texts`` and collect the annotator's probabilities (asking it unless ``answers`` given)."""
    if not annotator.has_scores:
        raise CmalignError(f"annotator {annotator.identity!r} gives no per-label scores; the "
                           "score-based variants need one that does (use the cm rules instead)")
    if answers is None:
        answers = annotator.annotate(texts, labels)
    A = np.stack([a.scores for a in answers]).astype(np.float64)
    answer = np.array([labels.index(a.label) for a in answers])
    return Evidence(X=encoder.encode(texts).astype(np.float64), A=A, answer=answer)


class ScoredMethod(ABC):
    """A method that turns evidence into ``p(y|x)``: a meta-estimator around an annotator with scores.

    Subclasses implement :meth:`fit_evidence` and :meth:`proba_evidence`; callers that already hold
    the evidence (``cmalign bench`` shares one look at the data across methods) use those directly.
    """

    def __init__(self, annotator: Annotator, *, encoder: SentenceEncoder | None = None) -> None:
        self.annotator = annotator
        self.encoder = encoder_of(annotator, encoder)

    def fit(self, texts: Sequence[str], labels: Sequence[str], label_set: LabelSet | None = None) -> Self:
        """Ask the annotator about the preference samples and fit on its answers and the user's labels."""
        label_set = label_set if label_set is not None else LabelSet.of(labels)
        ev = gather(texts, label_set, self.annotator, self.encoder)
        return self.fit_evidence(ev, np.array([label_set.index(y) for y in labels]), label_set)

    @abstractmethod
    def fit_evidence(self, ev: Evidence, y: np.ndarray, labels: LabelSet) -> Self:
        """Fit on the preference samples' evidence and their label indices."""

    @abstractmethod
    def proba_evidence(self, ev: Evidence) -> np.ndarray:
        """p(y|x), shape (items, labels), rows summing to 1."""

    def predict_proba(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None) -> np.ndarray:
        """p(y|x) per text over ``labels_``; its maximum is the item's confidence.

        ``answers`` may hold the annotator's answers on ``texts`` already made (with scores).
        """
        return self.proba_evidence(gather(texts, self.labels_, self.annotator, self.encoder, answers))

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels_.labels[j] for j in self.predict_proba(texts).argmax(axis=1)]
