"""cm_best learning from the corpus it labels: never from labels it has not got, the same labels
however the corpus is cut into chunks, and better than cm_stack on a real corpus."""

import copy
import threading
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from cmalign import CombinedCM
from cmalign.data import Budget, protocol_split
from cmalign.data.datasets import Split
from cmalign.data.io import Item
from cmalign.evaluation import accuracy, bench
from cmalign.labeler import Labeler
from cmalign.method import TransductiveCM, combined, transductive
from cmalign.method.evidence import gather


@pytest.fixture(scope="module")
def massive(annotator, massive_1pct):
    """MASSIVE at 1%: the split, its texts and labels, and the model fitted on the preference samples."""
    ds, split = massive_1pct
    texts, y = [i.text for i in split.preference], [i.label for i in split.preference]
    corpus, gold = [i.text for i in split.evaluation], [i.label for i in split.evaluation]
    model = TransductiveCM(annotator).fit(texts, y, label_set=ds.labels)
    return ds, split, texts, y, corpus, gold, model


def test_before_adapt_it_is_cm_stack_on_centred_vectors_and_after_it_labels_better(annotator, massive):
    ds, _, texts, y, corpus, gold, model = massive
    stack = CombinedCM(annotator).fit(texts, y, label_set=ds.labels)
    answers = annotator.annotate(corpus, ds.labels)
    fresh = TransductiveCM(annotator).fit(texts, y, label_set=ds.labels)
    # before adapt: cm_stack's model on the vectors (texts' and names') less the user's texts' mean
    pref = gather(texts, ds.labels, annotator, fresh.encoder_)
    assert np.allclose(fresh.centre_, pref.X.mean(axis=0))

    def centred(M):
        return combined._unit(M - fresh.centre_)

    same = CombinedCM(annotator)
    same.encoder_ = fresh.encoder_
    same._label_vectors = lambda labels: centred(CombinedCM._label_vectors(stack, labels))
    same.fit_evidence(replace(pref, X=centred(pref.X)), np.array([ds.labels.index(v) for v in y]), ds.labels)
    ev = gather(corpus, ds.labels, annotator, fresh.encoder_, answers)
    assert np.allclose(fresh.predict_proba(corpus, answers=answers), same.proba_evidence(replace(ev, X=centred(ev.X))),
                       atol=1e-12, rtol=0)
    assert not np.allclose(fresh.predict_proba(corpus, answers=answers), stack.predict_proba(corpus, answers=answers))
    fresh.adapt(corpus, answers=answers)
    assert fresh.fraction_ in fresh.fractions and fresh.alpha_ in fresh.alphas
    assert (fresh.fraction_, fresh.alpha_) != (0.0, 0.0)  # 1% of MASSIVE: the corpus has much to teach
    before = accuracy(stack.predict(corpus, answers=answers), gold)
    after = accuracy(fresh.predict(corpus, answers=answers), gold)
    assert after > before + 0.01
    assert np.allclose(fresh.predict_proba(corpus[:50], answers=answers[:50]).sum(axis=1), 1.0)


def test_labels_do_not_depend_on_how_the_corpus_is_cut_or_on_what_it_learned_before(annotator, massive):
    ds, _, texts, y, corpus, _, _ = massive
    model = TransductiveCM(annotator).fit(texts, y, label_set=ds.labels).adapt(corpus)
    whole = model.predict_proba(corpus)
    chunks = np.vstack([model.predict_proba(corpus[i:i + 333]) for i in range(0, len(corpus), 333)])
    assert np.allclose(whole, chunks, atol=1e-12)
    # on the items it learned from, labelling a text equals the propagated fixed point
    assert model.alpha_ > 0
    ev = gather(corpus, ds.labels, annotator, model.encoder_)
    assert np.allclose(model.proba_evidence(ev), model.Ps_, atol=1e-6)
    # learning from another corpus, then this one again, gives the same model
    again = TransductiveCM(annotator).fit(texts, y, label_set=ds.labels).adapt(corpus[:1000]).adapt(corpus)
    assert np.allclose(again.predict_proba(corpus), whole, atol=1e-12)


def test_shuffled_evaluation_labels_give_the_same_predictions(annotator, encoder, massive, monkeypatch):
    ds, split, *_ = massive
    seen = []
    real = bench._accuracy_of
    monkeypatch.setattr(bench, "_accuracy_of", lambda method, probs, gold: seen.append(probs) or real(method, probs, gold))
    rng = np.random.default_rng(7)
    labels = [i.label for i in split.evaluation]
    shuffled = Split(split.preference, tuple(replace(i, label=labels[j]) for i, j in
                                             zip(split.evaluation, rng.permutation(len(labels)))))
    first = bench._run_methods(split, ds.labels, annotator, encoder, ["cm_best"])
    second = bench._run_methods(shuffled, ds.labels, annotator, encoder, ["cm_best"])
    third = bench._run_methods(split, ds.labels, annotator, encoder, ["cm_best"])
    assert np.array_equal(seen[0], seen[1]) and np.array_equal(seen[0], seen[2])
    assert first["cm_best"].accuracy == third["cm_best"].accuracy   # the same run twice: the same number
    assert second["cm_best"].accuracy < first["cm_best"].accuracy - 0.3  # the shuffle did reach the scorer
    assert first["cm_best"].fit_seconds > 0


def test_annotate_encodes_the_sample_it_learned_from_once_and_a_worker_labels_alike(annotator, massive):
    ds, _, texts, y, corpus, _, _ = massive
    new = [f"{t} (ticket)" for t in corpus[:150]]  # texts no other test has encoded
    labeler = Labeler(annotator, "cm_best").fit(texts, y, label_set=ds.labels)
    encoder = labeler.method_.encoder_
    before = encoder.encoded
    assert labeler.adapt((Item(t) for t in new), len(new), 50) == 50
    sample = set(labeler.pins_)
    assert encoder.encoded - before == len(sample) and sample < set(new)
    before = encoder.encoded
    records = [r for chunk in labeler.label(new) for r in chunk]
    assert encoder.encoded - before == len(set(new) - sample)  # the sample's vectors reused, not encoded again
    # a labeller rebuilt from what a Ray worker is sent labels the same, to the last bit
    worker = Labeler.rebuilt(annotator, "cm_best", *labeler.portable())
    assert [r for chunk in worker.label(new) for r in chunk] == records
    assert not encoder._pinned  # outside a labelling call, nothing is pinned


def test_the_cross_fit_never_sees_the_held_out_half_s_labels(annotator, massive):
    """Each half's model must be learned from the other half alone: the regression on all the user's
    labels (``W_user_``) is no starting point for it, or the held-out labels it memorised would
    score themselves (on 5% of CLINC, a held-out log-likelihood of -0.005 a label instead of -0.7)."""
    ds, _, texts, y, corpus, _, model = massive
    yi = np.array([ds.labels.index(label) for label in y])
    other = np.roll(yi, 1)                  # other labels for every sample
    told = TransductiveCM(annotator).fit(texts, [ds.labels.labels[i] for i in other], label_set=ds.labels)
    lied = copy.copy(model)
    lied.W_user_ = told.W_user_             # a regression that learned other labels
    assert not np.allclose(model.W_user_, lied.W_user_)
    user = model._centred(gather(texts, ds.labels, annotator, model.encoder_))
    sample = model._centred(gather(corpus[:600], ds.labels, annotator, model.encoder_))
    assert np.array_equal(model._choose(user, yi, sample), lied._choose(user, yi, sample))


def test_label_names_refined_on_the_corpus_label_it_better_without_reading_a_label(annotator, massive):
    ds, _, texts, y, corpus, gold, model = massive
    X = model.encoder_.encode(corpus).astype(np.float64)
    X = (X - model.centre_) / np.linalg.norm(X - model.centre_, axis=1, keepdims=True)  # as the model reads them
    L = model.L_user_
    truth = np.array([ds.labels.index(label) for label in gold])
    before = float(np.mean((X @ L.T).argmax(axis=1) == truth))
    refined = transductive.refined_names(L, X, 0.05, 1.0)
    assert np.allclose(np.linalg.norm(refined, axis=1), 1.0)
    assert float(np.mean((X @ refined.T).argmax(axis=1) == truth)) > before + 0.05   # 0.512 -> 0.627
    # the setting is the one whose zero-shot classifier fits the user's labels best
    yi = np.array([ds.labels.index(label) for label in y])
    V, setting, loglik = transductive.choose_names(L, X, model.Xp_[:model.n_user_], yi)
    assert setting[0] in model.name_temperatures and setting[1] in model.name_weights
    assert np.array_equal(V, transductive.refined_names(L, X, *setting))
    other = transductive.refined_names(L, X, 0.02, 0.5)
    Z = model.Xp_[:model.n_user_] @ other.T
    s = combined._fit_scale(Z, yi)
    assert loglik >= float((s * Z[np.arange(len(yi)), yi] - logsumexp(s * Z, axis=1)).mean())
    # cm_best reads them where it read the names if its cross-fit takes them, and says so
    adapted = copy.deepcopy(model).adapt(corpus)
    assert (adapted.names_ is None) == np.array_equal(adapted.L_, L)
    assert (adapted.names_ is None) == ("label names refined on the corpus" not in adapted.adaptation())
    # the cross-fit takes them on seed 0's sample of MASSIVE (1%) and declines them on seed 1's
    assert adapted.names_ is not None and "label names refined on the corpus" in adapted.adaptation()
    other = protocol_split(ds, Budget(fraction=0.01), seed=1).preference
    declined = TransductiveCM(annotator).fit([i.text for i in other], [i.label for i in other], label_set=ds.labels)
    declined.adapt(corpus)
    assert declined.names_ is None and np.array_equal(declined.L_, declined.L_user_)
    assert "label names refined on the corpus" not in declined.adaptation()


def test_the_two_cross_fits_run_side_by_side_and_give_what_one_after_the_other_gives(annotator, massive, monkeypatch):
    ds, _, texts, y, corpus, _, model = massive
    threads = []
    real = TransductiveCM._choose
    monkeypatch.setattr(TransductiveCM, "_choose", lambda self, *a: threads.append(threading.current_thread()) or real(self, *a))
    with threadpool_limits(2):
        side = copy.deepcopy(model).adapt(corpus[:800])
        assert len(threads) == 2 and threading.main_thread() not in threads
        monkeypatch.setattr(transductive, "_each", lambda work, items: [work(item) for item in items])
        serial = copy.deepcopy(model).adapt(corpus[:800])
    assert np.array_equal(side.predict_proba(corpus[:300]), serial.predict_proba(corpus[:300]))
    assert side.adaptation() == serial.adaptation() and side.adapt_scores_ == serial.adapt_scores_
    threads.clear()
    with threadpool_limits(1):     # one BLAS thread to spend (OMP_NUM_THREADS=1): no thread of its own
        copy.deepcopy(model).adapt(corpus[:800])
    assert threads == [threading.main_thread()] * 2


def test_the_refined_names_must_win_on_each_half_not_only_in_total():
    """A gain in total that one half disputes keeps the names as given; the (fraction, alpha)
    compared are each candidate's own best by the total."""
    given = np.zeros((2, len(transductive.FRACTIONS), len(transductive.ALPHAS))) - 100.0
    given[:, 0, 0] = (-60.0, -60.0)                 # best by total: -120
    refined = given.copy()
    refined[:, 1, 2] = (-50.0, -65.0)               # -115 in total, but worse on the second half
    assert not transductive._better_on_every_half(refined, given)
    refined[:, 1, 2] = (-58.0, -59.0)               # better on both halves
    assert transductive._better_on_every_half(refined, given)
    refined[:, 2, 3] = (-40.0, -61.0)               # now its best by total (-101) is disputed again
    assert not transductive._better_on_every_half(refined, given)
    assert not transductive._better_on_every_half(given, given)   # a tie is no gain


def test_propagating_for_some_rows_keeps_exactly_those_rows_of_the_whole():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    P0 = rng.dirichlet(np.ones(5), size=300)
    W, rows = transductive.graph(X, 10), np.arange(40)
    whole = transductive.propagated(P0, W, (0.0, 0.5, 0.75))
    some = transductive.propagated(P0, W, (0.0, 0.5, 0.75), rows)
    assert all(np.array_equal(a[rows], b) for a, b in zip(whole, some))
    assert np.allclose(whole[1], transductive.propagate(P0, W, 0.5), atol=1e-7)


def test_a_cross_fit_holds_a_few_copies_of_the_corpus_sample_at_most(annotator, massive):
    """Memory of the learning step: one cross-fit's peak, against the bytes of the sample's own
    vectors and scores (one of the two run side by side on two cores)."""
    import tracemalloc
    ds, _, texts, y, corpus, _, model = massive
    model = copy.deepcopy(model)
    sample = model._centred(gather(corpus[:2000], ds.labels, annotator, model.encoder_))
    user = transductive.Evidence(X=model.Xp_[:model.n_user_], A=model.Ap_, answer=model.Ap_.argmax(axis=1))
    labels = model.yp_[:model.n_user_]
    model._restart(user.X, labels)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        model._choose(user, labels, sample)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 6 * (sample.X.nbytes + sample.A.nbytes)
