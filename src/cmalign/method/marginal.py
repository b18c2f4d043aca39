"""Probabilistic marginalisation: ``p(y|x) = sum_r p(r|x) T(y|r)``.

``p(r|x)`` is the annotator's own score for answering ``r``, sharpened or flattened by an exponent
``beta``; ``T`` is the memory bank turned into a transition estimate, smoothed toward "the user
meant what the annotator said":

    T(y|r) = (N[r, y] + alpha * [y == r]) / (sum_y' N[r, y'] + alpha)

That prior is the back-off and the small-count rule in one: an answer never seen among the
preference samples keeps its meaning (T(.|r) is the identity row), and one seen once moves only
as far as alpha lets a single count move it.

With ``instance_dependent=True`` the counts are weighted by how close each preference sample is to
``x`` (``w_j = exp((cos(x, x_j) - 1) / h)``), so the correction for answer ``r`` comes from the
preference samples near ``x`` that produced ``r``: the paper's instance-and-response-dependent
discrepancy, made literal.

``beta``, ``alpha`` and ``h`` are chosen by leave-one-out likelihood on the preference samples,
among the constructor's grids ``betas``, ``alphas`` and ``bandwidths``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ..annotators.base import Annotator
from ..encoder import SentenceEncoder
from ..labels import LabelSet
from .base import Array, Choice, Number
from .evidence import Evidence, ScoredMethod

# the defaults of MarginalCM's grids
BETAS = (0.5, 1.0, 2.5, 5.0)
ALPHAS = (0.25, 1.0, 4.0, 16.0)
BANDWIDTHS = (0.02, 0.05, 0.1, 0.2)


def _sharpen(A: np.ndarray, beta: float) -> np.ndarray:
    logp = beta * np.log(np.maximum(A, 1e-300))
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def _nll(p_true: np.ndarray) -> float:
    return float(-np.log(np.clip(p_true, 1e-12, None)).mean())


def _global_loo_nll(P: np.ndarray, answer: np.ndarray, y: np.ndarray, N: np.ndarray, alpha: float) -> float:
    n, C = P.shape
    T = N + alpha * np.eye(C)
    rows = T.sum(axis=1)
    Tn = T / rows[:, None]
    p = (P * Tn[:, y].T).sum(axis=1)
    # sample i's own count leaves row answer[i]: correct that row's contribution (an answer
    # outside the label set, -1, was never counted)
    ii = np.flatnonzero(answer >= 0)
    own_row, yi = answer[ii], y[ii]
    loo_row_y = (T[own_row, yi] - 1.0) / (rows[own_row] - 1.0)
    p[ii] += P[ii, own_row] * (loo_row_y - Tn[own_row, yi])
    return _nll(p)


def _instance_probs(P: np.ndarray, W: np.ndarray, answer: np.ndarray, Y: np.ndarray, alpha: float) -> np.ndarray:
    """p(y|x) with per-x weighted counts. W: (m, n) weights of preference samples; Y: one-hot labels."""
    R = np.eye(P.shape[1] + 1)[answer, :-1]         # (n, C) one-hot answers (-1, out of the set: none)
    den = W @ R + alpha                             # (m, C) weighted count of each answer r, plus prior
    coef = P / den                                  # p(r|x) / denominator, per r
    said = np.hstack([coef, np.zeros((len(coef), 1))])[:, answer]  # a sample whose answer was out of the set: 0
    return (W * said) @ Y + alpha * coef


class MarginalCM(ScoredMethod):
    """``p(y|x) = sum_r p(r|x) T(y|r)`` around any annotator (one without scores: ``p(r|x)`` from its
    answers); ``cm_marg``, and ``cm_ibank`` with ``instance_dependent``.

    Parameters
    ----------
    annotator : Annotator
        What is asked about each text.
    instance_dependent : bool, default False
        Weigh the bank's counts by the preference samples' similarity to each text.
    encoder : SentenceEncoder, optional
        How texts become vectors (for ``instance_dependent``): by default the embedding
        annotator's, else the embedded model.
    betas : tuple of float, default BETAS
        The exponents on the annotator's scores.
    alphas : tuple of float, default ALPHAS
        The strengths of the prior "the user meant what the annotator said".
    bandwidths : tuple of float, default BANDWIDTHS
        The similarity bandwidths ``h`` (``instance_dependent`` only).

    Attributes
    ----------
    classes_, label_set_, bank_, encoder_
        As for every method.
    X_ : ndarray of shape (samples, dim)
        The preference samples' unit vectors.
    answer_ : ndarray of shape (samples,)
        The annotator's answers on them, as label indices (-1: outside the label set).
    y_ : ndarray of shape (samples,)
        The user's labels, as label indices.
    Y_ : ndarray of shape (samples, labels)
        The same, one-hot.
    counts_ : ndarray of shape (labels, labels)
        The bank: how often the user meant each label when the annotator gave each answer.
    beta_, alpha_ : float
        The chosen exponent and prior strength.
    bandwidth_ : float or None
        The chosen bandwidth (None unless ``instance_dependent``).

    Examples
    --------
    An annotator that swaps two labels, and the user's labels that say so:

    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.annotators.base import ScoringAnnotator
    >>> from cmalign.method.examples import Swapper
    >>> from cmalign.method.examples import Letters
    >>> labels = LabelSet(("alarm", "music", "weather"))
    >>> texts = ["set an alarm", "alarm at six", "will it rain", "rain tomorrow", "play a song", "some music"]
    >>> y = ["alarm", "alarm", "weather", "weather", "music", "music"]
    >>> model = MarginalCM(Swapper(), encoder=Letters()).fit(texts, y, label_set=labels)
    >>> model.predict(["an alarm for seven", "rain later"])
    ['alarm', 'weather']
    >>> model.counts_
    array([[0., 0., 2.],
           [0., 2., 0.],
           [2., 0., 0.]])
    """

    _constraints = {"instance_dependent": Choice((False, True)), "betas": Number(low=0, above=True, grid=True),
                    "alphas": Number(low=0, above=True, grid=True), "bandwidths": Number(low=0, above=True, grid=True)}
    _state_arrays = {"X_": Array(("samples", "dim")), "answer_": Array(("samples",), "answer"),
                     "y_": Array(("samples",), "label"), "Y_": Array(("samples", "labels")),
                     "counts_": Array(("labels", "labels"))}
    _state_values = {"beta_": Number(low=0, above=True), "alpha_": Number(low=0, above=True),
                     "bandwidth_": Number(low=0, above=True, optional=True)}

    def __init__(self, annotator: Annotator | None, *, instance_dependent: bool = False,
                 encoder: SentenceEncoder | None = None, betas: Sequence[float] = BETAS,
                 alphas: Sequence[float] = ALPHAS, bandwidths: Sequence[float] = BANDWIDTHS) -> None:
        super().__init__(annotator, encoder=encoder)
        self.instance_dependent = instance_dependent
        self.betas = betas
        self.alphas = alphas
        self.bandwidths = bandwidths

    def fit_evidence(self, ev: Evidence, y: np.ndarray, labels: LabelSet) -> MarginalCM:
        self._set_labels(labels)
        C = ev.A.shape[1]
        self.X_, self.answer_, self.y_ = ev.X, ev.answer, y
        self.Y_ = np.eye(C)[y]
        self.counts_ = np.zeros((C, C))
        said = ev.answer >= 0  # an answer outside the label set says nothing about any label
        np.add.at(self.counts_, (ev.answer[said], y[said]), 1.0)
        best = (np.inf, None)
        if self.instance_dependent:
            S = ev.X @ ev.X.T
            for h in self.bandwidths:
                W = np.exp((S - 1.0) / h)
                np.fill_diagonal(W, 0.0)  # leave one out: a sample never vouches for itself
                for beta, alpha in itertools.product(self.betas, self.alphas):
                    p = _instance_probs(_sharpen(ev.A, beta), W, ev.answer, self.Y_, alpha)
                    nll = _nll(p[np.arange(len(y)), y])
                    if nll < best[0] - 1e-12:
                        best = (nll, (beta, alpha, h))
            self.beta_, self.alpha_, self.bandwidth_ = best[1]
        else:
            for beta, alpha in itertools.product(self.betas, self.alphas):
                nll = _global_loo_nll(_sharpen(ev.A, beta), ev.answer, y, self.counts_, alpha)
                if nll < best[0] - 1e-12:
                    best = (nll, (beta, alpha))
            (self.beta_, self.alpha_), self.bandwidth_ = best[1], None
        return self

    def proba_evidence(self, ev: Evidence) -> np.ndarray:
        P = _sharpen(ev.A, self.beta_)
        if self.instance_dependent:
            W = np.exp((ev.X @ self.X_.T - 1.0) / self.bandwidth_)
            return _instance_probs(P, W, self.answer_, self.Y_, self.alpha_)
        T = self.counts_ + self.alpha_ * np.eye(P.shape[1])
        return P @ (T / T.sum(axis=1, keepdims=True))
