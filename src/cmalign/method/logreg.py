"""The baseline a practitioner fits first: a logistic regression on the user's labels.

Multinomial logistic regression (scikit-learn's, L2-penalised, L-BFGS) on the same sentence
embeddings and the same preference samples as every other method. Its inverse regularisation ``C``
is chosen by 5-fold cross-validation inside the preference samples (held-out accuracy, ties to the
better held-out likelihood, then to the stronger penalty), so it never sees an evaluation label.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.special import softmax

from ..annotators.base import Annotation
from ..encoder import SentenceEncoder
from .base import Array, Finite, Method, Number

# the defaults of LogisticRegressionClassifier's hyperparameters
CS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
FOLDS = 5
MAX_ITER = 2000
_FLOOR = 1e-12  # held-out probability of a label the training folds never saw


def _fit_one(X: np.ndarray, y: np.ndarray, C: float, n_labels: int, model=None,
             max_iter: int = MAX_ITER) -> tuple[np.ndarray, np.ndarray]:
    """Weights (labels, d) and biases (labels,) over the whole label set; a label absent from ``y``
    gets bias -inf (probability 0). ``model``, a LogisticRegression fitted on the same data at
    another C, is refitted from where it ended (warm start): the C path costs a fraction."""
    W, b = np.zeros((n_labels, X.shape[1])), np.full(n_labels, -np.inf)
    present = np.unique(y)
    if len(present) == 1:  # scikit-learn needs two classes; one label is simply certain
        b[present[0]] = 0.0
        return W, b
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = model if model is not None else LogisticRegression(max_iter=max_iter, warm_start=True)
    with warnings.catch_warnings():
        # at the largest C on separable data L-BFGS may stop at max_iter; CV judges the result
        warnings.simplefilter("ignore", ConvergenceWarning)
        # with few samples per label scikit-learn wonders whether y is a regression target; it is not
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        model.set_params(C=C).fit(X, y)
    if len(present) == 2:  # binary: one weight vector for the second class against the first
        W[present[1]], b[present[1]], b[present[0]] = model.coef_[0], model.intercept_[0], 0.0
    else:
        W[model.classes_], b[model.classes_] = model.coef_, model.intercept_
    return W, b


def _proba(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return softmax(X @ W.T + b, axis=1)


def choose_c(X: np.ndarray, y: np.ndarray, n_labels: int, cs: Sequence[float] = CS, folds: int = FOLDS,
             max_iter: int = MAX_ITER) -> tuple[float, tuple[tuple[float, float], ...]]:
    """The C with the best cross-validated accuracy, and each C's (accuracy) as pairs."""
    n = len(y)
    folds = min(folds, n)
    if folds < 2:
        return float(cs[0]), ()
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(0).permutation(n)] = np.arange(n) % folds
    from sklearn.linear_model import LogisticRegression

    models = [LogisticRegression(max_iter=max_iter, warm_start=True) for _ in range(folds)]
    scores = []
    for C in sorted(cs):  # strong to weak penalty, each fold warm-started from the last C
        right, loglik = 0, 0.0
        for f in range(folds):
            train, test = fold != f, fold == f
            P = _proba(X[test], *_fit_one(X[train], y[train], C, n_labels, models[f], max_iter))
            right += int((P.argmax(axis=1) == y[test]).sum())
            loglik += float(np.log(np.maximum(P[np.arange(test.sum()), y[test]], _FLOOR)).sum())
        scores.append((right / n, loglik / n))
    cs = sorted(cs)
    best = max(range(len(cs)), key=lambda j: (scores[j], -j))
    return float(cs[best]), tuple((float(C), acc) for C, (acc, _) in zip(cs, scores))


class LogisticRegressionClassifier(Method):
    """Logistic regression on sentence embeddings of the preference samples, ``C`` by
    cross-validation inside them. It asks no annotator.

    Parameters
    ----------
    encoder : SentenceEncoder, optional
        How texts become vectors (default: the embedded model).
    cs : tuple of float, default CS
        The inverse penalties to choose among.
    folds : int, default 5
        The folds of that choice.
    max_iter : int, default 2000
        The most L-BFGS iterations of one fit.

    Attributes
    ----------
    classes_, label_set_, encoder_
        As for every method.
    coef_ : ndarray of shape (labels, dim)
        The weights, a row per label of the whole label set.
    intercept_ : ndarray of shape (labels,)
        The biases (-inf for a label with no sample: it is never predicted).
    C_ : float
        The chosen inverse penalty.
    cv_accuracy_ : tuple of (float, float)
        Each C tried and its cross-validated accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.method.examples import Letters
    >>> labels = LabelSet(("x", "y", "z"))
    >>> lr = LogisticRegressionClassifier(Letters(), cs=(1.0, 100.0), folds=2)
    >>> lr = lr.fit(["aaa", "aab", "aba", "uuu", "uus", "usu"], list("xxxyyy"), label_set=labels)
    >>> lr.predict(["baa", "suu"])
    ['x', 'y']
    >>> lr.predict_proba(["baa"])[:, 2]  # no sample of z: never predicted
    array([0.])
    """

    uses_annotator = False
    uses_encoder = True
    _constraints = {"cs": Number(low=0, above=True, grid=True), "folds": Number(low=1, integer=True),
                    "max_iter": Number(low=1, integer=True)}
    _state_arrays = {"coef_": Array(("labels", "dim")), "intercept_": Array(("labels",), "score")}
    _state_values = {"C_": Number(low=0, above=True), "cv_accuracy_": Finite()}

    def __init__(self, encoder: SentenceEncoder | None = None, *, cs: Sequence[float] = CS,
                 folds: int = FOLDS, max_iter: int = MAX_ITER) -> None:
        self.encoder = encoder
        self.cs = cs
        self.folds = folds
        self.max_iter = max_iter

    def _fit(self, texts: list[str], y: np.ndarray, answers: Sequence[Annotation] | None) -> None:
        X = self.encoder_.encode(texts).astype(np.float64)
        C = len(self.classes_)
        self.C_, self.cv_accuracy_ = choose_c(X, y, C, tuple(self.cs), self.folds, self.max_iter)
        self.coef_, self.intercept_ = _fit_one(X, y, self.C_, C, max_iter=self.max_iter)

    def _proba(self, texts: list[str], answers: Sequence[Annotation] | None) -> np.ndarray:
        return _proba(self.encoder_.encode(texts).astype(np.float64), self.coef_, self.intercept_)
