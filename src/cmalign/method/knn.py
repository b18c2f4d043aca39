"""The baseline a user would try instead of CM: k nearest neighbours on their own labels.

Same preference samples, same embeddings as the embedded annotator. ``k`` is chosen by
leave-one-out accuracy on the preference samples themselves, so the baseline is as good as its
own labels allow and never sees evaluation labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..annotators.base import Annotation
from ..encoder import SentenceEncoder
from .base import Array, Finite, Method, Number

DEFAULT_KS = (1, 3, 5, 7, 10, 15, 20)


def _vote(sims: np.ndarray, neighbour_labels: np.ndarray, k: int, n_labels: int) -> np.ndarray:
    """Similarity-weighted vote of the k most similar samples, as scores of shape (rows, labels)."""
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(sims, top, axis=1)
    scores = np.zeros((sims.shape[0], n_labels), dtype=np.float64)
    rows = np.repeat(np.arange(sims.shape[0]), k)
    np.add.at(scores, (rows, neighbour_labels[top].ravel()), np.maximum(weights, 0).ravel() + 1e-9)
    return scores


def choose_k(sims_loo: np.ndarray, targets: np.ndarray, n_labels: int,
             ks: Sequence[int] = DEFAULT_KS) -> tuple[int, dict[int, float]]:
    """The k with the best leave-one-out accuracy (ties: the smaller k), and each k's accuracy.

    ``sims_loo`` is the samples' similarity matrix with ``-inf`` on its diagonal.
    """
    accuracy: dict[int, float] = {}
    for k in ks:
        if k >= len(targets):
            continue
        votes = _vote(sims_loo, targets, k, n_labels)
        accuracy[k] = float(np.mean(votes.argmax(axis=1) == targets))
    best = max(accuracy, key=lambda k: (accuracy[k], -k), default=1)
    return best, accuracy


class KNNClassifier(Method):
    """Similarity-weighted kNN over sentence embeddings, k picked by leave-one-out; ``predict_proba``
    is the normalised vote. It asks no annotator.

    Parameters
    ----------
    encoder : SentenceEncoder, optional
        How texts become vectors (default: the embedded model).
    ks : tuple of int, default DEFAULT_KS
        The neighbour counts to choose among (a count not below the number of samples is skipped).

    Attributes
    ----------
    classes_, label_set_, encoder_
        As for every method.
    vectors_ : ndarray of shape (samples, dim)
        The preference samples' unit vectors.
    targets_ : ndarray of shape (samples,)
        Their labels, as indices into ``classes_``.
    k_ : int
        The chosen neighbour count.
    loo_accuracy_ : tuple of (int, float)
        Each k tried and its leave-one-out accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.method.examples import Letters
    >>> texts = ["aaa", "aab", "aba", "uuu", "uus", "usu"]
    >>> knn = KNNClassifier(Letters(), ks=(1, 3)).fit(texts, list("xxxyyy"), label_set=LabelSet(("x", "y")))
    >>> knn.k_, knn.predict(["baa", "suu"])
    (1, ['x', 'y'])
    """

    uses_annotator = False
    uses_encoder = True
    _constraints = {"ks": Number(low=1, integer=True, grid=True)}
    _state_arrays = {"vectors_": Array(("samples", "dim")), "targets_": Array(("samples",), "label")}
    _state_values = {"k_": Number(low=1, integer=True), "loo_accuracy_": Finite()}

    def __init__(self, encoder: SentenceEncoder | None = None, *, ks: Sequence[int] = DEFAULT_KS) -> None:
        self.encoder = encoder
        self.ks = ks

    def _fit(self, texts: list[str], y: np.ndarray, answers: Sequence[Annotation] | None) -> None:
        self.vectors_ = self.encoder_.encode(texts)
        self.targets_ = y
        sims = self.vectors_ @ self.vectors_.T
        np.fill_diagonal(sims, -np.inf)  # leave one out: a sample never votes for itself
        self.k_, accuracy = choose_k(sims, self.targets_, len(self.classes_), tuple(self.ks))
        self.loo_accuracy_ = tuple(accuracy.items())

    def _proba(self, texts: list[str], answers: Sequence[Annotation] | None) -> np.ndarray:
        votes = _vote(self.encoder_.encode(texts) @ self.vectors_.T, self.targets_, self.k_, len(self.classes_))
        return votes / votes.sum(axis=1, keepdims=True)
