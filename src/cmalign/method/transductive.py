"""``cm_best``: the combined model, then what the corpus being labelled teaches it.

The user asks us to label a corpus; its texts, unlabelled, say where the dense regions and the
boundaries between them lie. :class:`TransductiveCM` fits the combined model (:class:`CombinedCM`,
``cm_stack``) on the preference samples, every vector (texts' and label names') first centred on the
mean of the user's texts and made unit length again (:meth:`TransductiveCM._centred`), and, given
the corpus (:meth:`Method.adapt`; ``annotate`` passes a seeded sample of its input), learns from it
in up to three steps:

1. **The label names, refined on the corpus.** A label's name is a weak description of what the
   user means by it (``english`` for English Language & Usage questions). Every text of the
   corpus is shared among the labels by its cosine to their vectors, softly, and each label's
   vector moves to the mean of its name and the centroid of its share (:func:`refined_names`,
   five rounds). No label is read. Of the 8 settings (how soft, how far to move), the one whose
   zero-shot classifier best predicts the user's labels is taken (:func:`choose_names`), and the
   combined model reads the refined vectors where it read the names (the prototypes and the prior
   mean of its regression), its regression and stacking weights fitted again.
2. **Self-training, once.** The combined model labels the corpus sample; the most confident
   ``fraction`` of each predicted label joins the preference samples as examples of that label,
   and the evidence built from examples (prototypes, centroids, nearest example, kNN vote, the
   prior-mean logistic regression) is computed again. The stacking weights, ``tau``, ``k`` and the
   regularisation stay as the user's own labels set them. An item never counts as its own example.
3. **Label propagation.** Over the sample's graph of nearest neighbours (cosine, ``neighbours`` each),
   ``P = (1 - alpha) P0 + alpha W P`` to its fixed point: an item's label leans toward its
   neighbours'. Any text, in the sample or not, is labelled as ``(1 - alpha) P0(x) + alpha *``
   the weighted mean of its neighbours' propagated labels, which on the sample is that fixed
   point, so the model labels every line of a streamed file the same way.

Whether to refine the names, ``fraction`` (of each label's items: 0 to 1) and ``alpha`` (0 to 0.75),
no change included, are chosen by 2-fold cross-fitting on the preference samples alone: the model,
with every choice the full set of labels made, is refitted on one half (its regression from the
prior, never from the fit that saw the other half); the other half joins the corpus sample as
unlabelled items; the (fraction, alpha) whose predictions give that half's labels the highest
likelihood, summed over both halves, wins. The refined names replace the names as given only if
their best beats the names' best on each half as well as in total (:func:`_better_on_every_half`).
No evaluation label, and nothing tuned per dataset.

Every grid and count named here is a constructor argument of :class:`TransductiveCM`, its default
the module constant of the same name in capitals (``fractions``: ``FRACTIONS``).

What it costs: the sample (at most ``sample`` items) is encoded and scored once; the names are
refined 8 times over it (matrix products); the refined model's regression is fitted again at the
lambda already chosen (6 fits); the cross-fit refits the regression once per half and once per
nonzero fraction for each of the two names (20 fits).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from scipy.special import logsumexp, softmax
from threadpoolctl import threadpool_info, threadpool_limits

from ..annotators.base import Annotator
from ..encoder import SentenceEncoder
from ..labels import LabelSet
from . import footprint
from .base import Array, Finite, Number
from .combined import FOLDS, LAMBDAS, STACK_L2, TAUS, CombinedCM, _fit_delta, _fit_scale, _unit
from .evidence import Evidence
from .knn import DEFAULT_KS

# the defaults of TransductiveCM's hyperparameters
NAME_TEMPERATURES = (0.02, 0.05)   # how softly the corpus's texts are assigned to labels (cosine / t)
NAME_WEIGHTS = (0.5, 1.0, 2.0, 4.0)  # of the texts' centroid against the label's name
NAME_ROUNDS = 5
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)   # of each predicted label's items, most confident first
ALPHAS = (0.0, 0.25, 0.5, 0.75)       # weight of the neighbours' labels
NEIGHBOURS = 10
CROSS_FOLDS = 2                    # of the cross-fit on the preference samples
SAME = 1.0 - 1e-6                  # cosine at or above which two texts are the same text
BLOCK = 256                        # rows of a similarity matrix computed at once (memory stays small)
ITERATIONS = 100
SAMPLE = 4096                      # corpus items learned from at most (a seeded sample of a larger one)


def neighbours(Q: np.ndarray, N: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``Q``, the ``k`` most similar rows of ``N`` other than itself (a row of ``N``
    the same text as the query is left out) and their normalised non-negative weights."""
    k = min(k, len(N) - 1)
    idx = np.empty((len(Q), k), dtype=np.int64)
    w = np.empty((len(Q), k))
    for start in range(0, len(Q), BLOCK):
        S = Q[start:start + BLOCK] @ N.T
        S[S >= SAME] = -np.inf
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        idx[start:start + BLOCK] = top
        w[start:start + BLOCK] = np.maximum(np.take_along_axis(S, top, axis=1), 0.0)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return idx, w


def graph(X: np.ndarray, k: int = NEIGHBOURS) -> sparse.csr_matrix:
    """The row-normalised k-nearest-neighbour graph of ``X`` (no item its own neighbour)."""
    idx, w = neighbours(X, X, k)
    return sparse.csr_matrix((w.ravel(), idx.ravel(), np.arange(0, idx.size + 1, idx.shape[1])),
                             shape=(len(X), len(X)))


def propagate(P0: np.ndarray, W: sparse.csr_matrix, alpha: float, iterations: int = ITERATIONS) -> np.ndarray:
    """The fixed point of ``P = (1 - alpha) P0 + alpha W P`` (to 1e-10, in at most ``iterations``
    steps; alpha < 1 makes it a contraction)."""
    P = P0
    for _ in range(iterations if alpha > 0 else 0):
        last, P = P, (1 - alpha) * P0 + alpha * (W @ P)
        if np.abs(P - last).max() < 1e-10:
            break
    return P


def propagated(P0: np.ndarray, W: sparse.csr_matrix, alphas: tuple[float, ...], rows: np.ndarray | None = None,
               tol: float = 1e-8) -> list[np.ndarray]:
    """:func:`propagate` for several ``alphas`` at once (only ``rows`` of each kept, if given),
    summed as the series ``(1 - alpha) sum_t alpha^t W^t P0``: each product with ``W`` serves every
    alpha. Every entry of ``W^t P0`` is at most 1, so stopping once ``max(alphas)^t < tol`` errs by
    less than ``tol``."""
    top = max(alphas)
    kept = slice(None) if rows is None else rows
    out = [(1 - a) * P0[kept] for a in alphas]
    term, t = P0, 0
    while top > 0 and top ** (t + 1) >= tol:
        term, t = W @ term, t + 1
        for i, a in enumerate(alphas):
            if a > 0:
                out[i] += (1 - a) * a ** t * term[kept]
    return out


def refined_names(L: np.ndarray, X: np.ndarray, temperature: float, weight: float,
                  rounds: int = NAME_ROUNDS) -> np.ndarray:
    """The label vectors ``L`` moved toward the corpus texts ``X`` they attract, reading no label:
    ``rounds`` times, every text is shared among the labels (a softmax of its cosines at
    ``temperature``) and each label becomes the unit mean of its name and, weighing ``weight``,
    the centroid of its share of the texts."""
    names = _unit(L)
    V = names
    for _ in range(rounds):
        V = _unit(names + weight * _unit(softmax(X @ V.T / temperature, axis=1).T @ X))
    return V


def choose_names(L: np.ndarray, X: np.ndarray, Xp: np.ndarray, y: np.ndarray, *,
                 temperatures: Sequence[float] = NAME_TEMPERATURES, weights: Sequence[float] = NAME_WEIGHTS,
                 rounds: int = NAME_ROUNDS) -> tuple[np.ndarray, tuple, float]:
    """(vectors, (temperature, weight), mean log-likelihood): the refinement of ``L`` on the corpus
    ``X`` (among ``temperatures`` x ``weights``, ``rounds`` rounds each) whose zero-shot classifier
    (cosine to the vectors, its scale fitted) gives the user's labels ``y`` of ``Xp`` the highest
    likelihood."""
    best = None
    ii = np.arange(len(y))
    for t in temperatures:
        for w in weights:
            V = refined_names(L, X, t, w, rounds)
            Z = Xp @ V.T
            scale = _fit_scale(Z, y)
            loglik = float((scale * Z[ii, y] - logsumexp(scale * Z, axis=1)).mean())
            if best is None or loglik > best[2] + 1e-12:
                best = (V, (t, w), loglik)
    return best


def _better_on_every_half(new: np.ndarray, old: np.ndarray) -> bool:
    """Whether a change (the refined label names) earns its place: its best (fraction, alpha), by the
    summed cross-fitted log-likelihoods (half, fraction, alpha) ``new``, beats the best of ``old``
    in total *and* on each half alone. One half's gain is not enough: a gain the halves do not agree
    on is as likely the noise of one split as a better model, and keeping the names as the user
    wrote them is the safer error."""
    a = np.unravel_index(np.argmax(old.sum(axis=0)), old.shape[1:])
    b = np.unravel_index(np.argmax(new.sum(axis=0)), new.shape[1:])
    return bool(new.sum(axis=0)[b] > old.sum(axis=0)[a] + 1e-9 and np.all(new[:, b[0], b[1]] > old[:, a[0], a[1]]))


def _each(work, items: list) -> list:
    """``[work(item) for item in items]``, in threads of one BLAS thread each where the process
    has more than one BLAS thread to spend: most of the cross-fit is single-threaded numpy, so
    two of them side by side use both cores where one would leave a core idle. The results do
    not depend on it."""
    blas = max((pool.get("num_threads", 1) for pool in threadpool_info()), default=1)
    workers = min(len(items), blas)
    if workers < 2:
        return [work(item) for item in items]
    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(work, items))


def _subset(ev: Evidence, rows: np.ndarray) -> Evidence:
    return Evidence(X=ev.X[rows], A=ev.A[rows], answer=ev.answer[rows])


def _sample(ev: Evidence, n: int) -> Evidence:
    """A seeded sample of ``n`` of the rows (all of them, in order, if there are no more)."""
    if len(ev.X) <= n:
        return ev
    return _subset(ev, np.sort(np.random.default_rng(0).choice(len(ev.X), n, replace=False)))


def _joined(a: Evidence, b: Evidence) -> Evidence:
    return Evidence(X=np.vstack([a.X, b.X]), A=np.vstack([a.A, b.A]), answer=np.concatenate([a.answer, b.answer]))


def _confident(P: np.ndarray, fraction: float) -> np.ndarray:
    """Rows of the most confident ``fraction`` of each predicted label (at least one per label)."""
    if fraction <= 0:
        return np.empty(0, dtype=np.int64)
    pred, conf = P.argmax(axis=1), P.max(axis=1)
    keep = []
    for c in np.unique(pred):
        rows = np.flatnonzero(pred == c)
        keep.append(rows[np.argsort(-conf[rows], kind="stable")][:max(1, int(round(fraction * len(rows))))])
    return np.sort(np.concatenate(keep))


class TransductiveCM(CombinedCM):
    """``cm_best``: :class:`CombinedCM` that also learns from the corpus it labels (see the module).

    Without :meth:`adapt` it labels as ``cm_stack`` would on the centred vectors.

    Parameters
    ----------
    annotator, encoder, taus, ks, lambdas, folds, stack_l2
        As for :class:`CombinedCM`.
    name_temperatures : tuple of float, default NAME_TEMPERATURES
        How softly the corpus's texts are shared among the labels when their names are refined
        (cosine / temperature).
    name_weights : tuple of float, default NAME_WEIGHTS
        The weights of a label's share of the corpus against its name.
    name_rounds : int, default 5
        The rounds of that refinement.
    fractions : tuple of float, default FRACTIONS
        The shares of each predicted label's corpus items, most confident first, that
        self-training may take as examples (0: none).
    alphas : tuple of float, default ALPHAS
        The weights of the neighbours' labels that propagation may give (0: none; below 1).
    neighbours : int, default 10
        The neighbours of each item in the corpus's graph.
    cross_folds : int, default 2
        The parts of the preference samples the choices are cross-fitted on.
    iterations : int, default 100
        The most steps of label propagation toward its fixed point.
    sample : int, default SAMPLE
        The most corpus items it learns from (a seeded sample of a larger corpus).

    Attributes
    ----------
    classes_, label_set_, bank_, encoder_, L_, Xp_, yp_, tau_, k_, W_, logreg_info_, weights_
        As for :class:`CombinedCM`, in the centred space; after :meth:`adapt` they are the
        adapted model's (``Xp_`` then holds pseudo-labelled corpus items after the user's).
    centre_ : ndarray of shape (dim,)
        The mean of the user's texts' vectors, which every vector is centred on.
    L_user_, W_user_, weights_user_, logreg_info_user_
        The model of the user's labels alone, which :meth:`adapt` starts from every time.
    Ap_ : ndarray of shape (n_user_, labels)
        The annotator's probabilities on the preference samples.
    n_user_ : int
        The first ``n_user_`` rows of ``Xp_`` are the user's.
    names_ : tuple or None
        The (temperature, weight) of the label names refined on the corpus; None: as given.
    fraction_, alpha_ : float
        The self-training share and the neighbours' weight, chosen by cross-fitting.
    Xs_ : ndarray of shape (corpus, dim)
        The corpus sample learned from (empty unless ``alpha_`` > 0).
    Ps_ : ndarray of shape (corpus, labels)
        Its propagated labels.
    adapt_scores_ : tuple of tuple of float
        After :meth:`adapt`: the cross-fitted log-likelihood per label of each (fraction, alpha).

    Examples
    --------
    Toy models (see :class:`CombinedCM`) and a corpus of 24 unlabelled texts:

    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.annotators.base import ScoringAnnotator
    >>> from cmalign.method.examples import CARD_LABELS as labels, CARD_TEXTS as texts, CARD_Y as y, CardSayer, Words
    >>> corpus = [f"{a} {b}" for a in ("card", "lost", "stolen", "rate")
    ...           for b in ("arrival", "pin", "exchange", "", "today", "now")]
    >>> model = TransductiveCM(CardSayer(), encoder=Words(), fractions=(0.0, 0.5), alphas=(0.0, 0.5))
    >>> model.fit(texts, y, label_set=labels).adapt(corpus).fraction_ in model.fractions
    True
    >>> model.predict(["i lost my card", "the rate for euros"])
    ['lost or stolen', 'exchange rate']
    >>> np.allclose(model.predict_proba(corpus).sum(axis=1), 1.0)
    True
    >>> TransductiveCM(CardSayer(), alphas=(0.5, 1.0)).fit(texts, y, label_set=labels)
    Traceback (most recent call last):
    ...
    cmalign.method.base.InvalidParameterError: alphas (0.5, 1.0): must be ... at least 0 and below 1
    """

    transductive = True
    _constraints = CombinedCM._constraints | {
        "name_temperatures": Number(low=0, above=True, grid=True), "name_weights": Number(low=0, grid=True),
        "name_rounds": Number(low=0, integer=True), "fractions": Number(low=0, high=1, grid=True),
        "alphas": Number(low=0, high=1, below=True, grid=True), "neighbours": Number(low=1, integer=True),
        "cross_folds": Number(low=2, integer=True), "iterations": Number(low=0, integer=True),
        "sample": Number(low=1, integer=True)}
    _state_arrays = CombinedCM._state_arrays | {
        "centre_": Array(("dim",)), "W_user_": Array(("labels", "dim")), "L_user_": Array(("labels", "dim")),
        "weights_user_": Array(("features",)), "Ap_": Array(("user", "labels")),
        "Xs_": Array(("corpus", "dim")), "Ps_": Array(("corpus", "labels"))}
    _state_values = CombinedCM._state_values | {
        "logreg_info_user_": CombinedCM._state_values["logreg_info_"], "names_": Finite(),
        "n_user_": Number(low=1, integer=True, dim="user"), "fraction_": Number(low=0, high=1),
        "alpha_": Number(low=0, high=1, below=True), "adapt_scores_": Finite(required=False)}

    def __init__(self, annotator: Annotator | None, *, encoder: SentenceEncoder | None = None,
                 taus: Sequence[float] = TAUS, ks: Sequence[int] = DEFAULT_KS, lambdas: Sequence[float] = LAMBDAS,
                 folds: int = FOLDS, stack_l2: float = STACK_L2,
                 name_temperatures: Sequence[float] = NAME_TEMPERATURES, name_weights: Sequence[float] = NAME_WEIGHTS,
                 name_rounds: int = NAME_ROUNDS, fractions: Sequence[float] = FRACTIONS,
                 alphas: Sequence[float] = ALPHAS, neighbours: int = NEIGHBOURS, cross_folds: int = CROSS_FOLDS,
                 iterations: int = ITERATIONS, sample: int = SAMPLE) -> None:
        super().__init__(annotator, encoder=encoder, taus=taus, ks=ks, lambdas=lambdas, folds=folds,
                         stack_l2=stack_l2)
        self.name_temperatures = name_temperatures
        self.name_weights = name_weights
        self.name_rounds = name_rounds
        self.fractions = fractions
        self.alphas = alphas
        self.neighbours = neighbours
        self.cross_folds = cross_folds
        self.iterations = iterations
        self.sample = sample

    @property
    def sample_limit(self) -> int:
        """The most corpus items it learns from (``annotate`` reads no more)."""
        return self.sample

    def cost(self, n_samples: int, n_labels: int, n_corpus: int = 0) -> footprint.Footprint:
        if not n_corpus:
            return footprint.of_fit(n_samples, n_labels)
        learned = min(n_corpus, self.sample) + self.n_user_  # the sample joins the user's items
        return footprint.of_adapt(learned, n_labels)

    def fit_evidence(self, ev: Evidence, y: np.ndarray, labels: LabelSet) -> TransductiveCM:
        # the vectors' common direction, estimated on the user's texts (see _centred)
        self.centre_ = ev.X.mean(axis=0) if len(ev.X) > 1 else np.zeros(ev.X.shape[1])
        super().fit_evidence(self._centred(ev), y, labels)
        # the model of the user's labels alone, which adapt() starts from every time
        self.W_user_, self.L_user_, self.weights_user_ = self.W_, self.L_, self.weights_
        self.logreg_info_user_ = self.logreg_info_
        self.names_ = None                    # (temperature, weight) of the label names refined on the corpus
        self.Ap_ = ev.A                      # the preference samples' annotator scores, for adapt
        self.n_user_ = len(y)
        self.fraction_, self.alpha_ = 0.0, 0.0
        self.Xs_ = np.zeros((0, ev.X.shape[1]))
        self.Ps_ = np.zeros((0, len(labels)))
        return self

    def _centred(self, ev: Evidence) -> Evidence:
        """The evidence with its vectors centred on the preference samples' mean and made unit
        length again. Every sentence embedding shares a large common component (the mean of the
        user's texts has norm 0.2-0.3 here), so the cosines between texts, and between a text and a
        label's name, are all high and differ in a narrow band; removed, what is particular to
        each text carries the similarity. The annotator's scores are its own and are not touched."""
        return Evidence(X=_unit(ev.X - self.centre_), A=ev.A, answer=ev.answer)

    def _label_vectors(self, labels: LabelSet) -> np.ndarray:
        return _unit(super()._label_vectors(labels) - self.centre_)

    # -- learning from the corpus --------------------------------------------------------------

    def adapt_evidence(self, corpus: Evidence) -> TransductiveCM:
        """Learn from the corpus's evidence (a seeded sample of ``sample`` items of a larger one):
        choose the label names (as given, or refined on the corpus), ``fraction_`` and ``alpha_``
        first, all by one cross-fit."""
        corpus = self._centred(_sample(corpus, self.sample))
        user = Evidence(X=self.Xp_[:self.n_user_], A=self.Ap_, answer=self.Ap_.argmax(axis=1))
        y = self.yp_[:self.n_user_]
        self._restart(user.X, y)
        if len(corpus.X) < self.neighbours + 1:
            return self
        names, setting, _ = choose_names(self.L_user_, corpus.X, user.X, y, temperatures=self.name_temperatures,
                                         weights=self.name_weights, rounds=self.name_rounds)
        models = (self, self.renamed(user, y, names))
        given, refined = _each(lambda m: m._choose(user, y, corpus), models)
        k = int(_better_on_every_half(refined, given))
        model, self.names_, loglik = models[k], (None, setting)[k], (given, refined)[k].sum(axis=0)
        i, j = np.unravel_index(np.argmax(loglik), loglik.shape)   # ties: the first, i.e. less change
        self.fraction_, self.alpha_ = self.fractions[i], self.alphas[j]
        self.adapt_scores_ = tuple(tuple(round(v / len(y), 5) for v in row) for row in loglik)
        trained, P = model._self_trained(corpus, model._stacked(corpus), self.fraction_)
        self.L_, self.weights_, self.logreg_info_ = model.L_, model.weights_, model.logreg_info_
        self.Xp_, self.yp_, self.W_ = trained.Xp_, trained.yp_, trained.W_
        if self.alpha_ > 0:
            self.Xs_, self.Ps_ = corpus.X, propagate(P, graph(corpus.X, self.neighbours), self.alpha_, self.iterations)
        return self

    def renamed(self, ev: Evidence, y: np.ndarray, L: np.ndarray) -> TransductiveCM:
        model = super().renamed(ev, y, L)
        model.W_user_ = model.W_      # its regression on the user's labels alone, for self-training
        return model

    def _restart(self, Xp: np.ndarray, yp: np.ndarray) -> None:
        """Forget an earlier corpus: back to the model of the user's labels alone."""
        self.Xp_, self.yp_ = Xp, yp
        self.W_, self.L_, self.weights_ = self.W_user_, self.L_user_, self.weights_user_
        self.logreg_info_ = self.logreg_info_user_
        self.fraction_, self.alpha_, self.names_ = 0.0, 0.0, None
        self.Xs_ = np.zeros((0, Xp.shape[1]))
        self.Ps_ = np.zeros((0, len(self.classes_)))

    def _choose(self, user: Evidence, y: np.ndarray, corpus: Evidence) -> np.ndarray:
        """The cross-fitted log-likelihood of the user's labels, shape (half, fraction, alpha):
        each half's labels, predicted by the model refitted on the other half."""
        n = len(y)
        fold = np.empty(n, dtype=np.int64)
        fold[np.random.default_rng(0).permutation(n)] = np.arange(n) % self.cross_folds
        loglik = np.zeros((self.cross_folds, len(self.fractions), len(self.alphas)))
        for f in range(self.cross_folds):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            if len(np.unique(y[train])) < 2:
                continue
            # the model as the user's labels configured it, on this part of them alone
            part = self._with_examples(user.X[train], y[train], len(train), warm=False)
            nodes = _joined(_subset(user, test), corpus)      # the held-out samples, unlabelled
            P0, W, rows = part._stacked(nodes), graph(nodes.X, self.neighbours), np.arange(len(test))
            for i, fraction in enumerate(self.fractions):
                loglik[f, i] = part._held_out(nodes, P0, W, fraction, rows, y[test])
        return loglik

    def _held_out(self, nodes: Evidence, P0: np.ndarray, W: sparse.csr_matrix, fraction: float, rows: np.ndarray,
                  y: np.ndarray) -> np.ndarray:
        """The log-likelihood of labels ``y`` of ``rows`` of ``nodes`` after self-training on
        ``fraction`` of them, for each alpha (only these rows kept: memory stays that of one model)."""
        _, P = self._self_trained(nodes, P0, fraction)
        return np.array([float(np.log(np.maximum(Pa[np.arange(len(rows)), y], 1e-12)).sum())
                         for Pa in propagated(P, W, tuple(self.alphas), rows)])

    def _with_examples(self, Xp: np.ndarray, yp: np.ndarray, n_user: int, warm: bool = True) -> TransductiveCM:
        """A copy that learns from these examples (the first ``n_user`` the user's) with every
        choice the user's labels made kept: ``tau``, ``k``, lambda and the stacking weights. Only
        the examples and the prior-mean logistic regression's weights change."""
        model = copy.copy(self)
        model.Xp_, model.yp_, model.n_user_ = Xp, yp, n_user
        lam, scale = self.logreg_info_.get("lambda"), self.logreg_info_.get("scale")
        if lam is not None:
            W0 = scale * self.L_
            model.W_ = W0 + _fit_delta(Xp, yp, W0, lam, self.W_user_ - W0 if warm else None)
            if n_user == len(yp):
                model.W_user_ = model.W_
        return model

    def _self_trained(self, corpus: Evidence, P0: np.ndarray, fraction: float) -> tuple[TransductiveCM, np.ndarray]:
        """The model with the most confident ``fraction`` of each label of ``corpus`` (by ``P0``,
        its probabilities) as examples, and its probabilities for ``corpus``."""
        rows = _confident(P0, fraction)
        if not len(rows):
            return self, P0
        model = self._with_examples(np.vstack([self.Xp_[:self.n_user_], corpus.X[rows]]),
                                    np.concatenate([self.yp_[:self.n_user_], P0[rows].argmax(axis=1)]),
                                    self.n_user_)
        return model, model._stacked(corpus)

    def adaptation(self) -> str:
        """What the corpus changed, in words (``annotate`` prints it)."""
        if self.fraction_ == 0 and self.alpha_ == 0 and self.names_ is None:
            return "nothing (the cross-fit on the preference samples found no gain)"
        steps = [] if self.names_ is None else ["the label names refined on the corpus"]
        if self.fraction_ > 0:
            steps.append(f"self-training on the most confident {self.fraction_:.0%} of each label")
        if self.alpha_ > 0:
            steps.append(f"neighbours' weight {self.alpha_:g}")
        return ", ".join(steps) + " (chosen on the preference samples)"

    # -- labelling -----------------------------------------------------------------------------

    def _similarities(self, X: np.ndarray) -> np.ndarray:
        S = super()._similarities(X)
        pseudo = S[:, self.n_user_:]
        pseudo[pseudo >= SAME] = -np.inf     # a corpus item is never its own example
        return S

    def _stacked(self, ev: Evidence) -> np.ndarray:
        """The combined model's probabilities with the examples it has now, ``BLOCK`` rows at a time
        (each row's arrays span every example: memory stays small however many were added)."""
        if len(ev.X) <= BLOCK:
            return CombinedCM.proba_evidence(self, ev)
        return np.vstack([CombinedCM.proba_evidence(self, _subset(ev, np.arange(i, min(i + BLOCK, len(ev.X)))))
                          for i in range(0, len(ev.X), BLOCK)])

    def proba_evidence(self, ev: Evidence) -> np.ndarray:
        ev = self._centred(ev)
        P = self._stacked(ev)
        if self.alpha_ <= 0 or len(self.Xs_) <= self.neighbours:
            return P
        idx, w = neighbours(ev.X, self.Xs_, self.neighbours)
        return (1 - self.alpha_) * P + self.alpha_ * np.einsum("nk,nkc->nc", w, self.Ps_[idx])
