"""``cm_stack``: one model that weighs the annotator's evidence against the user's own labels (``cm_best``
adds what the corpus being labelled teaches it: :mod:`cmalign.method.transductive`).

Seven pieces of evidence per (text x, label y), each a number that says "y fits x":

    f1  log p_annotator(y|x)                   what the annotator thinks
    f2  cos(x, prototype_y)                    the label's name pooled with the user's examples of
                                               it, the name counting as tau examples
    f3  cos(x, centroid of the user's y's)     0 where the user gave no y
    f4  [the user gave at least one y]
    f5  max cos(x, a user example of y)        the nearest example
    f6  kNN vote for y                         similarity-weighted, k nearest examples
    f7  x . W_y                                a logistic regression whose prior mean is the
                                               zero-shot classifier (W = s * label vectors + Delta,
                                               Delta shrunk by lambda)

and the prediction is a conditional logit over labels, ``p(y|x) = softmax_y(sum_k w_k f_k(x, y))``.
The weights ``w`` are fit on the preference samples by maximum likelihood with features computed
*without* the sample itself (leave-one-out for f1-f6, out-of-fold for f7), i.e. stacked
generalisation: each source of evidence gets the weight it earns on labels it has not seen.

So it degrades the right way. With few preference samples f2-f7 carry little held-out signal and
the weight moves to f1 and to the label-name prior inside f2 and f7 (the annotator); with many,
the user's labels dominate. Every hyperparameter (k, tau, the temperature s, lambda, w) is chosen
from the preference samples alone, among the constructor's grids (``taus``, ``ks``, ``lambdas``);
nothing is tuned per dataset.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp, softmax

from ..annotators.base import Annotator
from ..encoder import SentenceEncoder
from ..labels import LabelSet
from . import footprint
from .base import Array, Finite, Number
from .evidence import Evidence, ScoredMethod
from .knn import DEFAULT_KS, _vote, choose_k

# the defaults of CombinedCM's hyperparameters
TAUS = (1e6, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.0)   # tried in this order: ties keep the larger prior
LAMBDAS = (1.0, 1e-1, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)  # strong to weak
FOLDS = 5
STACK_L2 = 1e-3
FEATURES = ("annotator", "prototype", "centroid", "has_examples", "nearest_example", "knn_vote",
            "prior_logreg")


def _unit(M: np.ndarray) -> np.ndarray:
    return M / (np.linalg.norm(M, axis=-1, keepdims=True) + 1e-12)


def _class_sums(X: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    """Each label's sum of its examples' rows: a one-hot product, which adds the rows in the order
    ``np.add.at`` would (to the last bit) at a tenth of its time."""
    onehot = sparse.csr_matrix((np.ones(len(y)), (y, np.arange(len(y)))), shape=(C, len(y)))
    return np.asarray(onehot @ X)


def _prototype_loo(Xp: np.ndarray, yp: np.ndarray, L: np.ndarray, sums: np.ndarray, tau: float) -> np.ndarray:
    scores = Xp @ _unit(tau * L + sums).T
    own = _unit(tau * L[yp] + sums[yp] - Xp)        # own class without the sample itself
    scores[np.arange(len(yp)), yp] = (Xp * own).sum(axis=1)
    return scores


def _choose_tau(Xp: np.ndarray, yp: np.ndarray, L: np.ndarray, sums: np.ndarray,
                taus: Sequence[float] = TAUS) -> float:
    best = (-1.0, taus[0])
    for tau in taus:
        acc = float(np.mean(_prototype_loo(Xp, yp, L, sums, tau).argmax(axis=1) == yp))
        if acc > best[0] + 1e-12:
            best = (acc, tau)
    return best[1]


# -- f7: logistic regression with the zero-shot classifier as its prior mean ------------------

def _fit_scale(Z: np.ndarray, y: np.ndarray) -> float:
    ii = np.arange(len(y))

    def nll(log_s: float) -> float:
        s = np.exp(log_s)
        return float((logsumexp(s * Z, axis=1) - s * Z[ii, y]).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(0.0, np.log(200.0)), method="bounded").x))


def _fit_delta(X: np.ndarray, y: np.ndarray, W0: np.ndarray, lam: float, start: np.ndarray | None) -> np.ndarray:
    n, d = X.shape
    C = W0.shape[0]
    ii = np.arange(n)

    def loss(v: np.ndarray) -> tuple[float, np.ndarray]:
        D = v.reshape(C, d)
        Z = X @ (W0 + D).T
        lse = logsumexp(Z, axis=1)
        R = np.subtract(Z, lse[:, None])   # softmax minus the one-hot labels, built in one array
        np.exp(R, out=R)
        R[ii, y] -= 1.0
        grad = (R.T @ X) / n + lam * D
        return float((lse - Z[ii, y]).mean() + 0.5 * lam * (v @ v)), grad.ravel()

    v0 = np.zeros(C * d) if start is None else start.ravel()
    res = minimize(loss, v0, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return res.x.reshape(C, d)


def _prior_logreg(Xp: np.ndarray, yp: np.ndarray, L: np.ndarray, lambdas: Sequence[float] = LAMBDAS,
                  folds: int = FOLDS) -> tuple[np.ndarray, np.ndarray, dict]:
    """Weights for all samples, out-of-fold logits of the preference samples, and the choices made
    (lambda among ``lambdas``, by the likelihood out of ``folds`` folds)."""
    n, C = len(yp), L.shape[0]
    W0 = _fit_scale(Xp @ L.T, yp) * L
    folds = min(folds, n)
    if folds < 2:
        return W0, Xp @ W0.T, {"lambda": None}
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(0).permutation(n)] = np.arange(n) % folds
    oof = np.zeros((len(lambdas), n, C))
    for f in range(folds):
        train, test = fold != f, fold == f
        delta = None
        for j, lam in enumerate(lambdas):  # strong to weak, each warm-started from the last
            delta = _fit_delta(Xp[train], yp[train], W0, lam, delta)
            oof[j][test] = Xp[test] @ (W0 + delta).T
    ii = np.arange(n)
    nll = [float((logsumexp(Z, axis=1) - Z[ii, yp]).mean()) for Z in oof]
    j = int(np.argmin(nll))
    W = W0 + _fit_delta(Xp, yp, W0, lambdas[j], None)
    return W, oof[j], {"lambda": lambdas[j], "scale": float(W0[0] @ L[0])}


# -- the stack ---------------------------------------------------------------------------------

def _features(S: np.ndarray, Xq: np.ndarray, log_a: np.ndarray, yp: np.ndarray, Xp: np.ndarray,
              L: np.ndarray, tau: float, k: int, logreg: np.ndarray, loo: bool) -> np.ndarray:
    """(queries, labels, 7) evidence. With ``loo`` the queries are the preference samples
    themselves and each one's own contribution is removed (S must then have -inf on its diagonal)."""
    m, C = S.shape[0], L.shape[0]
    sums = _class_sums(Xp, yp, C)
    counts = np.tile(np.bincount(yp, minlength=C).astype(float), (m, 1))
    dots = Xq @ sums.T
    norms = np.tile(np.linalg.norm(sums, axis=1), (m, 1))
    if loo:
        ii = np.arange(m)
        counts[ii, yp] -= 1.0
        own = sums[yp] - Xp
        dots[ii, yp] = (Xq * own).sum(axis=1)
        norms[ii, yp] = np.linalg.norm(own, axis=1)
        proto = _prototype_loo(Xp, yp, L, sums, tau)
    else:
        proto = Xq @ _unit(tau * L + sums).T
    has = (counts > 0).astype(float)
    centroid = np.where(has > 0, dots / np.maximum(norms, 1e-9), 0.0)
    nearest = np.zeros((m, C))
    for c in np.unique(yp):
        best = S[:, yp == c].max(axis=1)
        nearest[:, c] = np.where(np.isfinite(best), best, 0.0)
    votes = _vote(S, yp, k, C)
    return np.stack([log_a, proto, centroid, has, nearest * has, votes, logreg], axis=2)


def _fit_weights(F: np.ndarray, y: np.ndarray, l2: float = STACK_L2) -> np.ndarray:
    n, _, K = F.shape
    ii = np.arange(n)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        Z = F @ w
        lse = logsumexp(Z, axis=1)
        P = np.exp(Z - lse[:, None])
        grad = np.einsum("nc,nck->k", P, F) / n - F[ii, y].mean(axis=0) + 2 * l2 * w
        return float((lse - Z[ii, y]).mean() + l2 * (w @ w)), grad

    return minimize(loss, np.zeros(K), jac=True, method="L-BFGS-B").x


class CombinedCM(ScoredMethod):
    """The combined model (``cm_stack``; ``cm_best`` adds what the corpus teaches): calibrated
    ``p(y|x)`` from all the evidence (see the module).

    Parameters
    ----------
    annotator : Annotator
        What is asked about each text; one without scores is read through its answers.
    encoder : SentenceEncoder, optional
        How texts and label names become vectors: by default the embedding annotator's, else the
        embedded model.
    taus : tuple of float, default TAUS
        The weights, counted in examples, of a label's name in its prototype, tried in order (a
        tie keeps the earlier).
    ks : tuple of int, default DEFAULT_KS
        The neighbour counts of the kNN vote, chosen by leave-one-out accuracy.
    lambdas : tuple of float, default LAMBDAS
        The penalties of the prior-mean regression, strong to weak, chosen by out-of-fold
        likelihood.
    folds : int, default 5
        The folds of that choice, whose out-of-fold logits the stacking weights are fitted on.
    stack_l2 : float, default 1e-3
        The L2 penalty on the stacking weights.

    Attributes
    ----------
    classes_ : tuple of str
        The labels, in the order of ``predict_proba``'s columns.
    label_set_ : LabelSet
        The label set fitted on.
    bank_ : MemoryBank
        The memory bank of the annotator's answers and the user's labels.
    encoder_ : SentenceEncoder
        The encoder the vectors come from.
    L_ : ndarray of shape (labels, dim)
        The label names' unit vectors (the zero-shot classifier inside the prototypes and the
        regression's prior mean).
    Xp_ : ndarray of shape (examples, dim)
        The examples' unit vectors (the preference samples').
    yp_ : ndarray of shape (examples,)
        The examples' labels, as indices into ``classes_``.
    tau_ : float
        The chosen weight of a label's name in its prototype.
    k_ : int
        The chosen neighbour count of the kNN vote.
    W_ : ndarray of shape (labels, dim)
        The prior-mean logistic regression's weights.
    logreg_info_ : dict
        Its choices: ``lambda`` (None with fewer than two samples) and ``scale``, the fitted
        temperature of the zero-shot classifier.
    weights_ : ndarray of shape (7,)
        The stacking weights, one per piece of evidence (:meth:`feature_weights` names them).

    Examples
    --------
    A toy encoder (the words of a text, as a unit vector) and a toy annotator (it says
    ``card arrival`` whenever a text names a card) stand in for real models:

    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.annotators.base import ScoringAnnotator
    >>> from cmalign.method.examples import CARD_LABELS as labels, CARD_TEXTS as texts, CARD_Y as y, CardSayer, Words
    >>> model = CombinedCM(CardSayer(), encoder=Words()).fit(texts, y, label_set=labels)
    >>> model
    CombinedCM(annotator=CardSayer('card-sayer'), encoder=<...Words object at ...>)
    >>> model.predict(["i lost my card", "the rate for euros"])
    ['lost or stolen', 'exchange rate']
    >>> model.predict_proba(["i lost my card"]).shape
    (1, 3)
    >>> sorted(model.feature_weights()) == sorted(FEATURES)
    True
    """

    _constraints = {"taus": Number(low=0, grid=True), "ks": Number(low=1, integer=True, grid=True),
                    "lambdas": Number(low=0, above=True, grid=True), "folds": Number(low=1, integer=True),
                    "stack_l2": Number(low=0)}
    _state_arrays = {"L_": Array(("labels", "dim")), "Xp_": Array(("examples", "dim")),
                     "yp_": Array(("examples",), "label"), "W_": Array(("labels", "dim")),
                     "weights_": Array(("features",))}
    _state_values = {"tau_": Number(low=0), "k_": Number(low=1, integer=True),
                     "logreg_info_": Finite({"lambda": Number(low=0, above=True, optional=True),
                                             "scale": Number()})}

    def __init__(self, annotator: Annotator | None, *, encoder: SentenceEncoder | None = None,
                 taus: Sequence[float] = TAUS, ks: Sequence[int] = DEFAULT_KS, lambdas: Sequence[float] = LAMBDAS,
                 folds: int = FOLDS, stack_l2: float = STACK_L2) -> None:
        self.annotator = annotator
        self.encoder = encoder
        self.taus = taus
        self.ks = ks
        self.lambdas = lambdas
        self.folds = folds
        self.stack_l2 = stack_l2

    def cost(self, n_samples: int, n_labels: int, n_corpus: int = 0) -> footprint.Footprint:
        return footprint.of_fit(n_samples, n_labels)

    def _fixed_dims(self, labels: int) -> dict[str, int]:
        return super()._fixed_dims(labels) | {"features": len(FEATURES)}

    def fit_evidence(self, ev: Evidence, y: np.ndarray, labels: LabelSet) -> CombinedCM:
        self._set_labels(labels)
        L = self._label_vectors(labels)
        C = L.shape[0]
        Xp = ev.X
        self.L_, self.Xp_, self.yp_ = L, Xp, y
        S = Xp @ Xp.T
        np.fill_diagonal(S, -np.inf)
        self.tau_ = _choose_tau(Xp, y, L, _class_sums(Xp, y, C), self.taus)
        self.k_, _ = choose_k(S, y, C, self.ks)
        self._fit_stack(ev, y, S, self.lambdas)
        return self

    def _label_vectors(self, labels: LabelSet) -> np.ndarray:
        """The labels' readable names, encoded: the zero-shot classifier inside f2 and f7."""
        encoder = self.encoder_ if self.encoder_ is not None else self._encoder()
        return encoder.encode(labels.readable()).astype(np.float64)

    def _fit_stack(self, ev: Evidence, y: np.ndarray, S: np.ndarray, lambdas: tuple[float, ...]) -> None:
        """The prior-mean regression (lambda among ``lambdas``) and the stacking weights, on the
        preference samples, reading the labels' vectors ``L_``; ``S`` is their similarity matrix
        with ``-inf`` on its diagonal."""
        self.W_, oof, self.logreg_info_ = _prior_logreg(ev.X, y, self.L_, lambdas, self.folds)
        self.weights_ = _fit_weights(_features(S, ev.X, ev.log_a, y, ev.X, self.L_, self.tau_, self.k_, oof,
                                               loo=True), y, self.stack_l2)

    def renamed(self, ev: Evidence, y: np.ndarray, L: np.ndarray) -> CombinedCM:
        """A copy that reads the labels' names as the unit vectors ``L`` (e.g. refined on a corpus)
        instead: the prior-mean regression and the stacking weights are fitted again on the
        preference samples ``ev``, ``y``; tau, k and lambda stay as they were chosen."""
        model = copy.copy(self)
        model.L_ = L
        S = ev.X @ ev.X.T
        np.fill_diagonal(S, -np.inf)
        lam = self.logreg_info_.get("lambda")
        model._fit_stack(ev, y, S, (lam,) if lam is not None else self.lambdas)
        return model

    def proba_evidence(self, ev: Evidence) -> np.ndarray:
        F = _features(self._similarities(ev.X), ev.X, ev.log_a, self.yp_, self.Xp_, self.L_, self.tau_, self.k_,
                      ev.X @ self.W_.T, loo=False)
        return softmax(F @ self.weights_, axis=1)

    def _similarities(self, X: np.ndarray) -> np.ndarray:
        """Cosine similarity of each query to each example the model learned from."""
        return X @ self.Xp_.T

    def feature_weights(self) -> dict[str, float]:
        """The weight each piece of evidence earned on held-out preference samples."""
        return dict(zip(FEATURES, (float(w) for w in self.weights_)))
