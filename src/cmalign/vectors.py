"""What every sentence-embedding model is to the rest of cmalign: texts in, unit vectors out, under
a name that says which weights made them (:class:`Embedder`). The models are in
:mod:`cmalign.embedders` (on this machine) and :mod:`cmalign.chat.embeddings` (behind an endpoint)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from .errors import ModelError


class Embedder(ABC):
    """Turns a batch of texts into unit-length float32 vectors, one row per text."""

    dim: int

    @property
    @abstractmethod
    def identity(self) -> str:
        """Names the model and its weights (a digest): banks and states record it. Never a secret."""

    @abstractmethod
    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Vectors for ``texts``, in their order, computed ``batch_size`` texts at a time."""

    @property
    def where(self) -> str:
        """The model as a message names it (with its server, where it has one)."""
        return self.identity

    @contextmanager
    def dry(self) -> Iterator[object | None]:
        """Within the block nothing is sent over the network; what an endpoint would have been sent
        is counted in the plan this yields. A model on this machine sends nothing: None."""
        yield None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


def unit_rows(vectors: np.ndarray, where: str) -> np.ndarray:
    """Rows scaled to length 1; a row that is not finite or is all zeros is an error naming ``where``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
        raise ModelError(f"{where}: the model gave a vector that is not finite or is all zeros")
    return vectors / norms
