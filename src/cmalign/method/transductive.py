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
3. **Label propagation.** Over the sample's graph of nearest neighbours (cosine, ``NEIGHBOURS`` each),
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

What it costs: the sample (at most ``SAMPLE`` items) is encoded and scored once; the names are
refined 8 times over it (matrix products); the refined model's regression is fitted again at the
lambda already chosen (6 fits); the cross-fit refits the regression once per half and once per
nonzero fraction for each of the two names (20 fits).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from scipy.special import logsumexp, softmax
from threadpoolctl import threadpool_info, threadpool_limits

from ..labels import LabelSet
from .combined import CombinedCM, _fit_delta, _fit_scale, _unit
from .evidence import Evidence

NAME_TEMPERATURES = (0.02, 0.05)   # how softly the corpus's texts are assigned to labels (cosine / t)
NAME_WEIGHTS = (0.5, 1.0, 2.0, 4.0)  # of the texts' centroid against the label's name
NAME_ROUNDS = 5
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)   # of each predicted label's items, most confident first
ALPHAS = (0.0, 0.25, 0.5, 0.75)       # weight of the neighbours' labels
NEIGHBOURS = 10
FOLDS = 2
SAME = 1.0 - 1e-6                  # cosine at or above which two texts are the same text
BLOCK = 512                        # rows of a similarity matrix computed at once (memory stays small)
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


def propagate(P0: np.ndarray, W: sparse.csr_matrix, alpha: float) -> np.ndarray:
    """The fixed point of ``P = (1 - alpha) P0 + alpha W P`` (to 1e-10; alpha < 1 makes it a contraction)."""
    P = P0
    for _ in range(ITERATIONS if alpha > 0 else 0):
        last, P = P, (1 - alpha) * P0 + alpha * (W @ P)
        if np.abs(P - last).max() < 1e-10:
            break
    return P


def propagated(P0: np.ndarray, W: sparse.csr_matrix, alphas: tuple[float, ...], tol: float = 1e-8) -> list[np.ndarray]:
    """:func:`propagate` for several ``alphas`` at once, summed as the series
    ``(1 - alpha) sum_t alpha^t W^t P0``: each product with ``W`` serves every alpha. Every entry of
    ``W^t P0`` is at most 1, so stopping once ``max(alphas)^t < tol`` errs by less than ``tol``."""
    top = max(alphas)
    out = [(1 - a) * P0 for a in alphas]
    term, t = P0, 0
    while top > 0 and top ** (t + 1) >= tol:
        term, t = W @ term, t + 1
        for i, a in enumerate(alphas):
            if a > 0:
                out[i] += (1 - a) * a ** t * term
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


def choose_names(L: np.ndarray, X: np.ndarray, Xp: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, tuple, float]:
    """(vectors, (temperature, weight), mean log-likelihood): the refinement of ``L`` on the corpus
    ``X`` whose zero-shot classifier (cosine to the vectors, its scale fitted) gives the user's
    labels ``y`` of ``Xp`` the highest likelihood."""
    best = None
    ii = np.arange(len(y))
    for t in NAME_TEMPERATURES:
        for w in NAME_WEIGHTS:
            V = refined_names(L, X, t, w)
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

    >>> best = TransductiveCM(EmbeddingAnnotator()).fit(pref_texts, y, label_set=label_set)  # doctest: +SKIP
    >>> best.adapt(corpus_texts).predict_proba(corpus_texts)  # doctest: +SKIP

    Without :meth:`adapt` it labels as ``cm_stack`` would on the centred vectors. Fitted attributes
    beyond CombinedCM's (which it holds in the centred space): ``centre_`` (the mean of the user's
    texts' vectors), ``fraction_``, ``alpha_`` (chosen by cross-fitting), ``n_user_`` (the first
    ``n_user_`` rows of ``Xp_`` are the user's; the others are pseudo-labelled corpus items),
    ``Xs_``/``Ps_`` (the corpus sample and its propagated labels), ``adapt_scores_``.
    """

    transductive = True
    sample_limit = SAMPLE  # corpus items it learns from at most (``annotate --adapt`` reads no more)

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
        """Learn from the corpus's evidence (a seeded sample of ``SAMPLE`` items of a larger one):
        choose the label names (as given, or refined on the corpus), ``fraction_`` and ``alpha_``
        first, all by one cross-fit."""
        corpus = self._centred(_sample(corpus, SAMPLE))
        user = Evidence(X=self.Xp_[:self.n_user_], A=self.Ap_, answer=self.Ap_.argmax(axis=1))
        y = self.yp_[:self.n_user_]
        self._restart(user.X, y)
        if len(corpus.X) < NEIGHBOURS + 1:
            return self
        names, setting, _ = choose_names(self.L_user_, corpus.X, user.X, y)
        models = (self, self.renamed(user, y, names))
        given, refined = _each(lambda m: m._choose(user, y, corpus), models)
        k = int(_better_on_every_half(refined, given))
        model, self.names_, loglik = models[k], (None, setting)[k], (given, refined)[k].sum(axis=0)
        i, j = np.unravel_index(np.argmax(loglik), loglik.shape)   # ties: the first, i.e. less change
        self.fraction_, self.alpha_ = FRACTIONS[i], ALPHAS[j]
        self.adapt_scores_ = tuple(tuple(round(v / len(y), 5) for v in row) for row in loglik)
        trained, P = model._self_trained(corpus, model._stacked(corpus), self.fraction_)
        self.L_, self.weights_, self.logreg_info_ = model.L_, model.weights_, model.logreg_info_
        self.Xp_, self.yp_, self.W_ = trained.Xp_, trained.yp_, trained.W_
        if self.alpha_ > 0:
            self.Xs_, self.Ps_ = corpus.X, propagate(P, graph(corpus.X), self.alpha_)
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
        fold[np.random.default_rng(0).permutation(n)] = np.arange(n) % FOLDS
        loglik = np.zeros((FOLDS, len(FRACTIONS), len(ALPHAS)))
        for f in range(FOLDS):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            if len(np.unique(y[train])) < 2:
                continue
            # the model as the user's labels configured it, on this part of them alone
            part = self._with_examples(user.X[train], y[train], len(train), warm=False)
            nodes = _joined(_subset(user, test), corpus)      # the held-out samples, unlabelled
            P0, W, rows = part._stacked(nodes), graph(nodes.X), np.arange(len(test))
            for i, fraction in enumerate(FRACTIONS):
                _, P = part._self_trained(nodes, P0, fraction)
                for j, Pa in enumerate(propagated(P, W, ALPHAS)):
                    loglik[f, i, j] = float(np.log(np.maximum(Pa[rows, y[test]], 1e-12)).sum())
        return loglik

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
        if self.alpha_ <= 0 or len(self.Xs_) <= NEIGHBOURS:
            return P
        idx, w = neighbours(ev.X, self.Xs_, NEIGHBOURS)
        return (1 - self.alpha_) * P + self.alpha_ * np.einsum("nk,nkc->nc", w, self.Ps_[idx])
