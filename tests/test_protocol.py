"""Every method through the one protocol, on the real embedded model and real data: fit, predict,
predict_proba, records, classes_, the unfitted error, scikit-learn's clone, and the saved state."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from cmalign import (METHODS, CmalignError, LabelSet, Labeler, LogisticRegressionClassifier,
                     NotFittedError, Record)
from cmalign.data import Budget, load_bundled, protocol_split
from cmalign.method import make_method

from scripted import ScriptedAnnotator


@pytest.fixture(scope="module")
def task(annotator):
    """MASSIVE at 2%: preference samples with the annotator's answers, and 300 evaluation texts."""
    ds = load_bundled("massive_scenario")
    split = protocol_split(ds, Budget(fraction=0.02), seed=0, limit=300)
    texts, y = [i.text for i in split.preference], [i.label for i in split.preference]
    new = [i.text for i in split.evaluation]
    return ds.labels, texts, y, annotator.annotate(texts, ds.labels), new, annotator.annotate(new, ds.labels)


@pytest.fixture(scope="module")
def fitted(task, annotator, encoder):
    labels, texts, y, answers, _, _ = task
    return {name: make_method(name, annotator, encoder).fit(texts, y, label_set=labels, answers=answers)
            for name in METHODS}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_gives_labels_probabilities_and_records_that_agree(name, fitted, task, annotator):
    labels, _, _, _, new, new_answers = task
    method = fitted[name]
    assert method.classes_ == labels.labels
    calls = annotator.calls
    given = new_answers if method.uses_annotator else None
    probs = method.predict_proba(new, answers=given)
    records = method.records(new, answers=given)
    predicted = method.predict(new, answers=given)
    assert probs.shape == (len(new), len(labels)) and np.allclose(probs.sum(axis=1), 1.0)
    assert [r.label for r in records] == predicted and all(isinstance(r, Record) for r in records)
    if name != "cm":  # the paper's rule may keep an out-of-set answer; no answer is out of set here
        assert all(label in labels for label in predicted)
    if method.gives_probabilities:
        assert predicted == [labels.labels[j] for j in probs.argmax(axis=1)]
        assert [r.confidence for r in records] == pytest.approx(probs.max(axis=1).tolist())
    else:  # a rule's probabilities are its decision, one-hot, and its records say what it did
        assert set(np.unique(probs)) <= {0.0, 1.0} and all(r.action for r in records)
    if method.uses_annotator:
        assert all(r.answer is a for r, a in zip(records, new_answers))
        assert all(r.candidates == method.bank_.candidates(a.key) for r, a in zip(records, new_answers))
        if name not in ("cm", "cm_remap"):  # only the rules ask again (a re-ask within candidates)
            assert annotator.calls == calls
    else:
        assert annotator.calls == calls and all(r.answer is None and r.candidates == () for r in records)


def test_the_methods_learn_the_users_labels(fitted, task):
    labels, _, _, _, new, new_answers = task
    gold = [i.label for i in protocol_split(load_bundled("massive_scenario"), Budget(fraction=0.02), seed=0,
                                             limit=300).evaluation]

    def acc(name):
        m = fitted[name]
        predicted = m.predict(new, answers=new_answers if m.uses_annotator else None)
        return np.mean([p == g for p, g in zip(predicted, gold)])

    # MASSIVE's zero-shot annotator is systematically off; the user's 230 labels fix much of it
    assert acc("base") < 0.56 and acc("logreg") > acc("base") + 0.15
    assert acc("cm_best") > max(acc("base"), acc("knn"), acc("logreg"))


@pytest.mark.parametrize("name", list(METHODS))
def test_an_unfitted_method_says_so(name, annotator, encoder):
    method = make_method(name, annotator, encoder)
    with pytest.raises(NotFittedError, match=f"{type(method).__name__} is not fitted yet"):
        method.predict(["wake me up at seven"])
    assert isinstance(NotFittedError("x"), AttributeError)  # as scikit-learn's is, for hasattr-style checks


@pytest.mark.parametrize("name", list(METHODS))
def test_clone_get_and_set_params(name, annotator, encoder, fitted):
    clone = pytest.importorskip("sklearn.base").clone
    method = fitted[name]
    copy = clone(method)
    assert type(copy) is type(method) and not copy.is_fitted
    params = copy.get_params()
    assert params == method.get_params()
    for key in ("annotator", "encoder"):  # a model in memory is shared, never copied
        if key in params:
            assert params[key] is getattr(method, key)
    assert repr(copy).startswith(f"{type(method).__name__}(")
    with pytest.raises(ValueError, match="has no parameter 'bogus'"):
        copy.set_params(bogus=1)


def test_clone_of_the_combined_model_prints_its_parameters(annotator):
    from sklearn.base import clone

    from cmalign import CombinedCM

    text = repr(clone(CombinedCM(annotator)))
    assert text == f"CombinedCM(annotator=EmbeddingAnnotator({annotator.identity!r}))"
    knn = make_method("knn", annotator).set_params(ks=(1, 3))
    assert knn.ks == (1, 3) and "ks=(1, 3)" in repr(knn)


def test_every_method_reads_an_annotator_without_scores_through_its_answers(encoder):
    """A chat model's habits, learned from its answers: it swaps 'alarm' and 'weather' (as this
    user means them), and answers music requests with something outside the label set."""
    ds = load_bundled("massive_scenario")
    by = {name: [i.text for i in ds.large if i.label == name] for name in ("alarm", "weather", "music")}
    said = {"alarm": "weather", "weather": "alarm", "music": "play it loud"}
    answers = {t: said[name] for name, texts in by.items() for t in texts[:14]}
    pref = [(t, name) for name, texts in by.items() for t in texts[:10]]
    new = [(t, name) for name, texts in by.items() for t in texts[10:14]]
    text_only = ScriptedAnnotator(answers)
    assert not text_only.has_scores
    labels = LabelSet(("alarm", "music", "weather"))
    right = {}
    for name in METHODS:
        method = make_method(name, text_only, encoder).fit([t for t, _ in pref], [y for _, y in pref], label_set=labels)
        P = method.predict_proba([t for t, _ in new])
        assert P.shape == (len(new), 3) and np.allclose(P.sum(axis=1), 1.0), name
        predicted = method.predict([t for t, _ in new])
        right[name] = sum(p == y for p, y in zip(predicted, [y for _, y in new]))
    assert right["base"] == 0 and right["cm"] == 0  # the answers taken as they are: all wrong
    # the swap learned from the answers (music, answered outside the set, is a three-way tie for cm_marg)
    assert right["cm_remap"] >= 8 and right["cm_marg"] >= 8 and right["cm_ibank"] >= 8, right
    assert right["cm_stack"] == right["cm_best"] == 12, right  # and the examples place music
    marg = make_method("cm_marg", text_only, encoder).fit([t for t, _ in pref], [y for _, y in pref], label_set=labels)
    p_alarm = marg.predict_proba([t for t, y in new if y == "alarm"])[0]  # answered 'weather'
    assert p_alarm[labels.index("alarm")] > 0.8


def test_an_inferred_label_set_smaller_than_the_annotators_warns(fitted, task, annotator):
    labels, texts, y, answers, _, _ = task
    few = [i for i, label in enumerate(y) if label in ("alarm", "weather")]
    with pytest.warns(UserWarning, match="inferred from y .2 labels. but the annotator was given a larger one"):
        make_method("cm_remap", annotator).fit([texts[i] for i in few], [y[i] for i in few],
                                                answers=[answers[i] for i in few])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_method("cm_remap", annotator).fit([texts[i] for i in few], [y[i] for i in few],
                                                label_set=labels, answers=[answers[i] for i in few])


def test_logreg_is_scikit_learns_regression_with_columns_over_the_whole_label_set(fitted, task, encoder):
    from sklearn.linear_model import LogisticRegression

    labels, texts, y, _, new, _ = task
    lr = fitted["logreg"]
    assert lr.C_ in LogisticRegressionClassifier().cs
    best = max(a for _, a in lr.cv_accuracy_)
    assert dict(lr.cv_accuracy_)[lr.C_] == best
    reference = LogisticRegression(C=lr.C_, max_iter=2000).fit(encoder.encode(texts).astype(np.float64), y)
    expected = reference.predict_proba(encoder.encode(new).astype(np.float64))
    columns = [labels.index(c) for c in reference.classes_]
    probs = lr.predict_proba(new)
    assert np.allclose(probs[:, columns], expected, atol=1e-6)
    absent = [j for j in range(len(labels)) if j not in columns]
    assert np.all(probs[:, absent] == 0.0)  # a label the user never gave is never predicted


@pytest.mark.parametrize("name", ["cm_best", "cm_ibank", "knn", "logreg"])
def test_a_saved_state_is_used_again_and_gives_the_same_labels(name, task, annotator, encoder, tmp_path):
    labels, texts, y, _, new, _ = task
    first = Labeler(annotator, name, encoder=encoder).fit(texts, y, label_set=labels)
    written = first.save(tmp_path / "bank.json")
    assert written == [tmp_path / "bank.json", tmp_path / f"bank.{name}.npz"]
    again = Labeler.load(tmp_path / "bank.json", annotator, name, encoder=encoder)
    assert again.refit_reason is None
    assert np.array_equal(again.method_.predict_proba(new), first.method_.predict_proba(new))
    assert [r for chunk in again.label(new) for r in chunk] == first.method_.records(new)


def test_a_state_for_another_bank_or_method_is_not_used(task, annotator, encoder, tmp_path):
    labels, texts, y, _, new, _ = task
    Labeler(annotator, "cm_best", encoder=encoder).fit(texts, y, label_set=labels).save(tmp_path / "bank.json")
    Labeler(annotator, "cm_best", encoder=encoder).fit(texts[:-1], y[:-1], label_set=labels) \
        .save(tmp_path / "other.json")
    (tmp_path / "other.cm_best.npz").replace(tmp_path / "bank.cm_best.npz")
    reloaded = Labeler.load(tmp_path / "bank.json", annotator, "cm_best", encoder=encoder)
    assert reloaded.refit_reason == "bank.cm_best.npz: saved for another bank"
    (tmp_path / "bank.cm_best.npz").write_bytes(b"not a zip file")
    assert "unreadable" in Labeler.load(tmp_path / "bank.json", annotator, "cm_best", encoder=encoder).refit_reason
    # a state an older cmalign wrote (version 1: no model of the user's labels alone; 2: no
    # centre_, the vectors read uncentred) is refitted, not misread
    fitted = Labeler(annotator, "cm_best", encoder=encoder).fit(texts, y, label_set=labels)
    for version, missing in ((1, "L_user_"), (2, "centre_")):
        fitted.save(tmp_path / "bank.json")
        with np.load(tmp_path / "bank.cm_best.npz") as data:
            arrays = {name: data[name] for name in data.files if name != "__meta__" and missing not in name}
            meta = json.loads(str(data["__meta__"]))
        np.savez(tmp_path / "bank.cm_best.npz", __meta__=np.array(json.dumps(meta | {"version": version})), **arrays)
        old = Labeler.load(tmp_path / "bank.json", annotator, "cm_best", encoder=encoder)
        assert old.refit_reason == "bank.cm_best.npz: not a state file this cmalign reads"
        assert np.allclose(old.method_.predict_proba(new), fitted.method_.predict_proba(new), atol=1e-12)
    rule = Labeler.load(tmp_path / "bank.json", annotator, "cm_remap", encoder=encoder)
    assert rule.refit_reason is None and rule.method_.bank_ is rule.bank_  # the rules need only the bank


def test_labeler_refuses_what_it_cannot_do(annotator, tmp_path):
    with pytest.raises(CmalignError, match="unknown method 'best'"):
        Labeler(annotator, "best")
    with pytest.raises(CmalignError, match="not fitted yet"):
        next(Labeler(annotator).label(["x"]))
    with pytest.raises(CmalignError, match="counts requests to a model"):
        Labeler(annotator).plan(["x"], label_set=LabelSet.of(["a", "b"]))


def test_labeler_labels_in_chunks_in_order(task, annotator, encoder):
    labels, texts, y, _, new, _ = task
    labeler = Labeler(annotator, "cm_remap", encoder=encoder, chunk_size=64).fit(texts, y, label_set=labels)
    chunks = list(labeler.label(iter(new)))
    assert [len(c) for c in chunks] == [64] * (len(new) // 64) + [len(new) % 64]
    assert [r.label for c in chunks for r in c] == labeler.method_.predict(new)


def test_the_readme_lists_every_method_of_the_registry():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## What the methods are", 1)[1].split("\n\n", 2)[1]
    names = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert names == list(METHODS)
    for name, spec in METHODS.items():
        assert f"| `{name}` | {spec.summary} |" in table
