"""Which items of an unlabelled pool the user should label next.

The paper (and ``bench`` by default) takes the user's 1-5% as a random sample. At 1% a random sample
misses whole classes (100 random items of banking77 cover about 56 of its 77 labels), and a class with
no example is one the user's labels cannot teach. A selector picks the items instead:

- ``random``: the paper's protocol, a seeded uniform sample.
- ``cover`` (cold start, no labels yet): k-means with as many clusters as items wanted, and from each
  cluster its most typical item (the one in the densest part of it, not an outlier). The sample then
  spreads over everything the corpus talks about, which is what a few labels need to reach every
  class. Where the annotator gives a score per label, the clustering sees it beside the embedding
  (the annotator's probabilities at half the embedding's scale), so items the annotator answers
  differently fall apart more readily, and the bank learns what the user means by more of its answers.
- ``uncertain`` (labels exist): the current method fitted on them; the pool items it is least sure of
  (lowest probability of its own label), favouring those predicted as the thinnest classes, spread out
  by clustering the most doubtful candidates and taking one from each cluster.

:func:`select` returns pool indices in ascending order; the same arguments give the same indices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .chunks import batched
from .data.fields import Item
from .errors import DataError
from .interchange import write_rows
from .output import carried, output_format

if TYPE_CHECKING:
    from .annotators.base import Annotator
    from .encoder import SentenceEncoder
    from .labels import LabelSet
    from .labeler import Labeler

SELECTORS = ("random", "cover", "uncertain")
ANNOTATOR_WEIGHT = 0.5  # the annotator's probabilities beside the unit embedding in cover's clustering
_NEIGHBOURS = 20  # typicality: inverse mean distance to this many nearest neighbours in the cluster


def check_selectors(names: Sequence[str]) -> list[str]:
    """``names`` as given, or one clear error naming the first unknown one ('all': every selector)."""
    names = list(SELECTORS) if list(names) == ["all"] else list(names)
    unknown = next((n for n in names if n not in SELECTORS), None)
    if unknown is not None:
        raise DataError(f"unknown selector {unknown!r}; choose from {', '.join(SELECTORS)} (or all)")
    return names


def select(selector: str, n: int, pool_size: int, *, seed: int = 0,
           vectors: Callable[[], np.ndarray] | None = None,
           probabilities: Callable[[], tuple[np.ndarray, Sequence[str]]] | None = None,
           labelled: Sequence[str] = (), annotator_scores: Callable[[], np.ndarray] | None = None) -> np.ndarray:
    """``n`` distinct indices into a pool of ``pool_size`` items, sorted.

    ``vectors`` gives the pool's unit embeddings (``cover``, ``uncertain``); ``annotator_scores`` the
    annotator's probabilities per label (``cover``, where it gives them); ``probabilities`` gives the
    current method's probabilities over the pool and their classes (``uncertain``), ``labelled`` the
    labels the user has given so far (to find the thin classes).
    """
    check_selectors([selector])
    if not 1 <= n <= pool_size:
        raise DataError(f"cannot select {n} items from a pool of {pool_size}")
    rng = np.random.default_rng(seed)
    if selector == "random" or n == pool_size:
        return np.sort(rng.choice(pool_size, size=n, replace=False))
    x = vectors()
    if selector == "cover":
        if annotator_scores is not None:
            x = np.hstack([x, ANNOTATOR_WEIGHT * annotator_scores()])
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.sort(_typical_per_cluster(x, n, seed))
    probs, classes = probabilities()
    return np.sort(_uncertain(x, probs, classes, labelled, n, seed))


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster assignments of ``x`` into ``k`` clusters (mini-batch k-means beyond 50,000 rows,
    where full k-means would take minutes per pass)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(x) > 50_000:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=max(4096, 3 * k), n_init=1)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=1)
    return model.fit_predict(x)


def _typical_per_cluster(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """From each of ``n`` k-means clusters, its most typical member (TypiClust's choice: the densest
    point of the cluster, not an outlier and not merely the centroid's neighbour)."""
    assign = _kmeans(x, n, seed)
    chosen = []
    for cluster in range(n):
        members = np.flatnonzero(assign == cluster)
        if len(members):
            chosen.append(members[_most_typical(x[members])])
    return _top_up(np.array(chosen, dtype=int), n, len(x), seed)


def _most_typical(x: np.ndarray) -> int:
    """The row of ``x`` with the highest mean similarity to its nearest neighbours in ``x`` (a sample
    of 2,000 rows stands in for a larger cluster)."""
    if len(x) <= 2:
        return 0
    sample = x if len(x) <= 2000 else x[np.random.default_rng(0).choice(len(x), 2000, replace=False)]
    similarity = x @ sample.T
    if sample is x:
        np.fill_diagonal(similarity, -np.inf)
    k = min(_NEIGHBOURS, len(sample) - 1)
    nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]  # the k largest similarities per row
    return int(np.argmax(nearest.mean(axis=1)))


def _uncertain(x: np.ndarray, probs: np.ndarray, classes: Sequence[str], labelled: Sequence[str], n: int,
               seed: int) -> np.ndarray:
    """The least sure items, thin classes first, one per cluster of the most doubtful candidates."""
    counts = Counter(labelled)
    predicted = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), predicted]
    thinness = np.array([1.0 / np.sqrt(1.0 + counts.get(classes[j], 0)) for j in range(len(classes))])
    doubt = (1.0 - confidence) * thinness[predicted]
    candidates = np.argsort(-doubt, kind="stable")[:min(len(x), 4 * n)]
    if len(candidates) <= n:
        return _top_up(candidates, n, len(x), seed)
    assign = _kmeans(x[candidates], n, seed)
    chosen = []
    for cluster in range(n):
        members = candidates[assign == cluster]
        if len(members):
            chosen.append(members[np.argmax(doubt[members])])
    return _top_up(np.array(chosen, dtype=int), n, len(x), seed)


def _top_up(chosen: np.ndarray, n: int, pool_size: int, seed: int) -> np.ndarray:
    """``chosen`` with seeded random pool items added until there are ``n`` (k-means can leave a
    cluster empty)."""
    chosen = np.unique(chosen)
    if len(chosen) >= n:
        return chosen[:n]
    rest = np.setdiff1d(np.arange(pool_size), chosen)
    extra = np.random.default_rng([seed, 2]).choice(rest, size=n - len(chosen), replace=False)
    return np.concatenate([chosen, extra])


def choose(items: Sequence[Item], n: int, encoder: SentenceEncoder, *, labeler: Labeler | None = None,
           annotator: Annotator | None = None, label_set: LabelSet | None = None, selector: str = "auto",
           seed: int = 0) -> list[Item]:
    """The ``n`` items of an unlabelled pool to label next, in pool order. ``auto`` is ``cover``
    without a fitted ``labeler`` and ``uncertain`` with one (its bank's labels are the ones given so
    far; pool items whose text is already in the bank are never chosen again). ``cover`` reads the
    ``annotator``'s scores over ``label_set`` too, where it gives scores."""
    if selector == "auto":
        selector = "uncertain" if labeler is not None else "cover"
    if selector == "uncertain" and labeler is None:
        raise DataError("the uncertain selector needs the labels given so far: pass a bank ({=bank})")
    if labeler is not None:
        known = {sample.text for sample in labeler.bank_.samples}
        items = [item for item in items if item.text not in known]
    if not items:
        raise DataError("every item of the pool is labelled already")
    texts = [item.text for item in items]
    labelled = [sample.label for sample in labeler.bank_.samples] if labeler is not None else []

    def probabilities() -> tuple[np.ndarray, Sequence[str]]:
        chunks = [labeler.method_.predict_proba(chunk) for chunk in batched(texts, labeler.chunk_size)]
        return np.concatenate(chunks), labeler.method_.classes_

    scores = None
    if annotator is not None and annotator.has_scores and label_set is not None:
        scores = lambda: annotator_scores(annotator, texts, label_set)  # noqa: E731
    chosen = select(selector, n, len(items), seed=seed, vectors=lambda: encoder.encode(texts),
                    probabilities=probabilities, labelled=labelled, annotator_scores=scores)
    return [items[i] for i in chosen]


def annotator_scores(annotator: Annotator, texts: Sequence[str], label_set: LabelSet, chunk: int = 2048) -> np.ndarray:
    """The annotator's probabilities over ``label_set`` for each text, shape (texts, labels)."""
    return np.vstack([np.stack([a.scores for a in annotator.annotate(part, label_set)])
                      for part in batched(texts, chunk)])


def write_to_label(path: str | Path, items: Sequence[Item], *, fields: Sequence[str] | None = None) -> None:
    """The chosen items as a file ``cmalign fit`` reads once the empty ``label`` of each is filled
    in: ``line``, ``text``, the pool's own fields (``fields``; all by default) and ``label``, as
    JSONL, CSV, TSV or Parquet by the suffix (``-``: JSONL on standard output)."""

    def rows():
        for item in items:
            record = {"label": ""}
            yield item.line, {"line": item.line, "text": item.text, **carried(item, record, fields), **record}

    write_rows(path, rows, output_format(path), path)
