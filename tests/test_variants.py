"""The score-based variants: the back-off, instance dependence, leave-one-out without leakage,
and the combined method on real data with the real model."""

import numpy as np
import pytest

from cmalign import CombinedCM, LabelSet, MarginalCM
from cmalign.evaluation import accuracy
from cmalign.evaluation.metrics import expected_calibration_error
from cmalign.method import combined, marginal
from cmalign.method.evidence import Evidence, gather
from cmalign.method.knn import KNNClassifier


def unit(M):
    M = np.asarray(M, dtype=float)
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def one_hot_evidence(X, answers, C):
    A = np.full((len(answers), C), 1e-9)
    A[np.arange(len(answers)), answers] = 1.0
    return Evidence(X=unit(X), A=A / A.sum(axis=1, keepdims=True), answer=np.asarray(answers))


def fitted(model, ev, y):
    return model.fit_evidence(ev, np.asarray(y), LabelSet.of(f"label {j}" for j in range(ev.A.shape[1])))


def marginal_model(instance_dependent):
    return MarginalCM(None, instance_dependent=instance_dependent)  # array-level use: no annotator


def test_an_answer_never_seen_keeps_its_meaning():
    rng = np.random.default_rng(0)
    ev = one_hot_evidence(rng.normal(size=(20, 8)), [0] * 10 + [1] * 10, C=3)
    m = fitted(marginal_model(False), ev, [1] * 10 + [1] * 10)  # the user always meant 1
    probs = m.proba_evidence(one_hot_evidence(rng.normal(size=(2, 8)), [0, 2], C=3))
    assert probs[0].argmax() == 1  # answer 0 is corrected by the bank
    assert probs[1].argmax() == 2  # answer 2 was never seen: back off to the annotator
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_a_single_count_moves_an_answer_only_as_far_as_the_prior_allows():
    ev = one_hot_evidence(np.eye(4)[[0, 1, 1, 1]], [0, 1, 1, 1], C=4)
    m = fitted(marginal_model(False), ev, [2, 1, 1, 1])
    m.alpha_ = 4.0  # one contrary observation against a prior worth four
    assert m.proba_evidence(one_hot_evidence(np.eye(4)[[0]], [0], C=4))[0].argmax() == 0
    m.alpha_ = 0.25
    assert m.proba_evidence(one_hot_evidence(np.eye(4)[[0]], [0], C=4))[0].argmax() == 2


def test_the_grids_given_are_the_ones_chosen_from():
    ev = one_hot_evidence(np.eye(4)[[0, 1, 1, 1]], [0, 1, 1, 1], C=4)
    default = fitted(marginal_model(False), ev, [2, 1, 1, 1])
    assert default.alpha_ in marginal.ALPHAS and default.beta_ in marginal.BETAS
    narrow = fitted(MarginalCM(None, alphas=(3.0,), betas=(0.7,)), ev, [2, 1, 1, 1])
    assert (narrow.alpha_, narrow.beta_) == (3.0, 0.7)
    ident = fitted(MarginalCM(None, instance_dependent=True, bandwidths=(0.3,)), ev, [2, 1, 1, 1])
    assert ident.bandwidth_ == 0.3


def test_instance_dependent_bank_tells_apart_what_the_global_bank_cannot():
    # the annotator says 0 everywhere; near direction a the user means 1, near direction b 2
    rng = np.random.default_rng(1)
    a, b = np.eye(16)[0], np.eye(16)[1]
    X = np.vstack([a + 0.05 * rng.normal(size=(12, 16)), b + 0.05 * rng.normal(size=(12, 16))])
    ev = one_hot_evidence(X, [0] * 24, C=3)
    y = [1] * 12 + [2] * 12
    queries = one_hot_evidence(np.vstack([a, b]) + 0.05 * rng.normal(size=(2, 16)), [0, 0], C=3)
    local = fitted(marginal_model(True), ev, y).proba_evidence(queries).argmax(axis=1)
    flat = fitted(marginal_model(False), ev, y).proba_evidence(queries).argmax(axis=1)
    assert local.tolist() == [1, 2]
    assert flat[0] == flat[1]


def test_global_leave_one_out_likelihood_matches_refitting_without_each_sample():
    rng = np.random.default_rng(2)
    n, C = 30, 4
    A = rng.dirichlet(np.ones(C), size=n)
    answer, y = A.argmax(axis=1), rng.integers(0, C, size=n)
    N = np.zeros((C, C))
    np.add.at(N, (answer, y), 1.0)
    fast = marginal._global_loo_nll(A, answer, y, N, alpha=1.0)
    slow = []
    for i in range(n):
        Ni = N.copy()
        Ni[answer[i], y[i]] -= 1
        T = Ni + np.eye(C)
        slow.append(A[i] @ (T / T.sum(axis=1, keepdims=True))[:, y[i]])
    assert fast == pytest.approx(-np.mean(np.log(slow)))


def test_combined_features_leave_each_sample_out_exactly():
    rng = np.random.default_rng(3)
    n, C, d = 25, 5, 12
    Xp, L = unit(rng.normal(size=(n, d))), unit(rng.normal(size=(C, d)))
    yp = rng.integers(0, C, size=n)
    log_a = rng.normal(size=(n, C))
    S = Xp @ Xp.T
    np.fill_diagonal(S, -np.inf)
    loo = combined._features(S, Xp, log_a, yp, Xp, L, tau=2.0, k=3, logreg=np.zeros((n, C)), loo=True)
    for i in range(n):
        keep = np.arange(n) != i
        alone = combined._features(Xp[[i]] @ Xp[keep].T, Xp[[i]], log_a[[i]], yp[keep], Xp[keep], L,
                                   tau=2.0, k=3, logreg=np.zeros((1, C)), loo=False)
        assert np.allclose(loo[i], alone[0], atol=1e-9), i


def test_expected_calibration_error():
    probs = np.tile([0.9, 0.1], (100, 1))
    right = np.zeros(100, dtype=int)
    right[:10] = 1  # 90 of 100 answers right at confidence 0.9: calibrated
    assert expected_calibration_error(probs, right) == pytest.approx(0.0)
    right[:50] = 1  # half right at confidence 0.9: over-confident by 0.4
    assert expected_calibration_error(probs, right) == pytest.approx(0.4)


@pytest.fixture(scope="module")
def massive_run(massive_1pct):
    ds, split = massive_1pct
    pref_texts, pref_labels = [i.text for i in split.preference], [i.label for i in split.preference]
    eval_texts, gold = [i.text for i in split.evaluation], [i.label for i in split.evaluation]
    return ds, pref_texts, pref_labels, eval_texts, gold


def test_combined_beats_the_annotator_and_knn_and_is_calibrated(annotator, massive_run):
    ds, pref_texts, pref_labels, eval_texts, gold = massive_run
    best = CombinedCM(annotator).fit(pref_texts, pref_labels, label_set=ds.labels)
    assert set(best.feature_weights()) == set(combined.FEATURES)
    answers = annotator.annotate(eval_texts, ds.labels)
    probs = best.predict_proba(eval_texts, answers=answers)
    assert np.allclose(probs.sum(axis=1), 1.0)
    predicted = [ds.labels.labels[j] for j in probs.argmax(axis=1)]
    knn = KNNClassifier(annotator.encoder).fit(pref_texts, pref_labels, label_set=ds.labels)
    base_acc = accuracy([a.label for a in answers], gold)
    knn_acc = accuracy(knn.predict(eval_texts), gold)
    assert accuracy(predicted, gold) > max(base_acc, knn_acc) + 0.02
    gold_index = [ds.labels.index(g) for g in gold]
    assert expected_calibration_error(probs, gold_index) < 0.08
    assert best.predict(eval_texts[:5]) == predicted[:5]


def test_marginal_variants_on_real_data(annotator, massive_run):
    ds, pref_texts, pref_labels, eval_texts, gold = massive_run
    base = accuracy([a.label for a in annotator.annotate(eval_texts, ds.labels)], gold)
    for instance_dependent in (False, True):
        m = MarginalCM(annotator, instance_dependent=instance_dependent).fit(pref_texts, pref_labels, label_set=ds.labels)
        assert m.alpha_ in m.alphas and m.beta_ in m.betas
        assert (m.bandwidth_ in m.bandwidths) if instance_dependent else m.bandwidth_ is None
        assert accuracy(m.predict(eval_texts), gold) > base  # massive's annotator is systematically off


def test_an_annotator_without_scores_is_read_through_its_answers(encoder):
    from scripted import ScriptedAnnotator

    labels = LabelSet.of(["a", "b"])
    ev = gather(["x", "y"], labels, ScriptedAnnotator({"x": "a", "y": "no idea"}), encoder)
    # (votes + 1/C) / (n + 1): its answer is one vote; an answer outside the set votes for nothing
    assert np.allclose(ev.A, [[0.75, 0.25], [0.5, 0.5]]) and ev.answer.tolist() == [0, -1]
