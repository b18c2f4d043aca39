"""The embedded default annotator: zero-shot label similarity with a sentence-embedding model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..encoder import SentenceEncoder
from ..labels import LabelSet
from .base import ScoringAnnotator


class EmbeddingAnnotator(ScoringAnnotator):
    """Zero-shot annotator: the label whose readable name is most similar to the text.

    Scores are a softmax of the cosine similarities over the allowed labels at ``temperature``.
    A candidate restriction is honoured by taking the best allowed label, so a re-ask costs no
    model call beyond the cached encoding.
    """

    def __init__(self, encoder: SentenceEncoder | None = None, *, temperature: float = 0.05) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else SentenceEncoder()
        self.temperature = temperature
        self._label_vectors: dict[tuple[str, ...], np.ndarray] = {}

    @property
    def identity(self) -> str:
        return f"embedding:{self.encoder.identity}:label-similarity"

    def label_vectors(self, labels: LabelSet) -> np.ndarray:
        key = labels.labels + labels.descriptions
        if key not in self._label_vectors:
            self._label_vectors[key] = self.encoder.encode(labels.readable())
        return self._label_vectors[key]

    def similarities(self, texts: Sequence[str], labels: LabelSet) -> np.ndarray:
        """Cosine similarity of each text to each label's readable name, shape (texts, labels)."""
        return self.encoder.encode(texts) @ self.label_vectors(labels).T

    def label_scores(self, texts: Sequence[str], labels: LabelSet) -> np.ndarray:
        return self.similarities(texts, labels)
