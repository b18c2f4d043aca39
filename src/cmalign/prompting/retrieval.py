"""Which of the user's labelled examples a prompt shows: the most similar ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..encoder import SentenceEncoder


class ExampleRetriever:
    """The labelled examples most similar to a text (cosine similarity of sentence embeddings)."""

    def __init__(self, encoder: SentenceEncoder, texts: Sequence[str], labels: Sequence[str]) -> None:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts for {len(labels)} labels")
        self.encoder = encoder
        self.texts = list(texts)
        self.labels = list(labels)
        self._vectors = encoder.encode(self.texts) if self.texts else np.zeros((0, 1))

    def nearest(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """For each query, the indices of its ``k`` nearest examples (most similar first).

        An example whose text equals the query is skipped, so a preference sample never sees its
        own label. Ties go to the earlier example.
        """
        if not self.texts or k < 1:
            return [[] for _ in queries]
        sims = self.encoder.encode(list(queries)) @ self._vectors.T
        out = []
        for query, row in zip(queries, sims):
            order = np.argsort(-row, kind="stable")
            out.append([int(j) for j in order if self.texts[j] != query][:k])
        return out
