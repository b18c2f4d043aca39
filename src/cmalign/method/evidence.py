"""What the score-based variants see of a batch of texts: their embeddings and the annotator's
probabilities. Gathered once per batch so each variant reuses it instead of asking again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..annotators.base import Annotation, Annotator
from ..annotators.embedding import EmbeddingAnnotator, SentenceEncoder
from ..errors import CmalignError
from ..labels import LabelSet

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
