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
    assert acc("base") < 0.6 and acc("logreg") > acc("base") + 0.15
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
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):  # scikit-learn's set_params
        copy.set_params(bogus=1)


def test_clone_of_the_combined_model_prints_its_parameters(annotator):
    from sklearn.base import clone

    from cmalign import CombinedCM

    text = repr(clone(CombinedCM(annotator)))
    assert text == f"CombinedCM(annotator=EmbeddingAnnotator({annotator.identity!r}))"
    knn = make_method("knn", annotator).set_params(ks=(1, 3))
    assert knn.ks == (1, 3) and "ks=(1, 3)" in repr(knn)


def test_every_grid_is_a_parameter_with_its_default_and_fit_checks_it(annotator, task):
    from sklearn.base import clone

    from cmalign.method import TransductiveCM, combined, transductive

    best = make_method("cm_best", annotator)
    params = best.get_params()
    assert params["fractions"] == transductive.FRACTIONS and params["sample"] == transductive.SAMPLE
    assert params["taus"] == combined.TAUS and params["cross_folds"] == 2 and params["neighbours"] == 10
    assert best.sample_limit == transductive.SAMPLE
    small = clone(best).set_params(sample=500, alphas=(0.0, 0.5))
    assert small.sample_limit == 500 and "sample=500" in repr(small) and "alphas=(0.0, 0.5)" in repr(small)
    labels, texts, y, answers, _, _ = task
    for name, value, expected in (("alphas", (0.0, 1.0), "non-empty tuple of numbers at least 0 and below 1"),
                                  ("fractions", (), "non-empty tuple"), ("neighbours", 0, "whole number at least 1"),
                                  ("sample", 2.5, "whole number"), ("taus", (1.0, float("nan")), "numbers at least 0")):
        bad = TransductiveCM(annotator, **{name: value})
        with pytest.raises(CmalignError, match=re.escape(f"{name} {value!r}: must be")) as caught:
            bad.fit(texts, y, label_set=labels, answers=answers)
        assert expected in str(caught.value) and caught.value.render({name: f"--{name}"}).startswith(f"--{name} ")
        assert not bad.is_fitted
    with pytest.raises(CmalignError, match=r"instance_dependent 1: must be one of False, True"):
        make_method("cm_marg", annotator).set_params(instance_dependent=1).fit(texts, y, label_set=labels,
                                                                                answers=answers)


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


@pytest.mark.parametrize("name", ["cm_best", "cm_stack", "cm_ibank", "cm_marg", "knn", "logreg"])
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


def _rewrite_state(path, change):
    """The state file at ``path`` written again with ``change(meta, arrays)`` applied."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name != "__meta__"}
        meta = json.loads(str(data["__meta__"]))
    change(meta, arrays)
    np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)


@pytest.fixture(scope="module")
def saved_stack(task, annotator, encoder, tmp_path_factory):
    """cm_stack fitted and saved once: the bank, the state's bytes and the probabilities it gives."""
    labels, texts, y, _, new, _ = task
    folder = tmp_path_factory.mktemp("stack")
    labeler = Labeler(annotator, "cm_stack", encoder=encoder).fit(texts, y, label_set=labels)
    labeler.save(folder / "bank.json")
    return folder, (folder / "bank.cm_stack.npz").read_bytes(), labeler.method_.predict_proba(new[:100])


def _flip(blob: bytes, where: float) -> bytes:
    i = int(len(blob) * where)
    return blob[:i] + bytes([blob[i] ^ 0x10]) + blob[i + 1:]


DAMAGE = {
    "zero bytes": lambda blob, path: path.write_bytes(b""),
    "truncated": lambda blob, path: path.write_bytes(blob[:len(blob) // 2]),
    "one flipped byte in an array": lambda blob, path: path.write_bytes(_flip(blob, 0.5)),
    "one flipped byte in the zip directory": lambda blob, path: path.write_bytes(_flip(blob, 0.995)),
    "meta of the wrong type": lambda blob, path: _rewrite_state(path, lambda m, a: m.update(values=[1, 2])),
    "meta not a record": lambda blob, path: np.savez(path, __meta__=np.array("[1, 2]"), weights_=np.zeros(7)),
    "an array of the wrong shape": lambda blob, path: _rewrite_state(path, lambda m, a: a.update(weights_=np.ones(6))),
    "an array of the wrong dtype": lambda blob, path: _rewrite_state(
        path, lambda m, a: a.update(yp_=a["yp_"].astype(np.float64))),
    "arrays that disagree": lambda blob, path: _rewrite_state(path, lambda m, a: a.update(W_=a["W_"][:, :-1])),
    "NaN weights": lambda blob, path: _rewrite_state(path, lambda m, a: a.update(weights_=np.full(7, np.nan))),
    "an infinite vector": lambda blob, path: _rewrite_state(path, lambda m, a: a["Xp_"].__setitem__((0, 0), np.inf)),
    "a label index out of range": lambda blob, path: _rewrite_state(path, lambda m, a: a["yp_"].__setitem__(0, 99)),
    "an array missing": lambda blob, path: _rewrite_state(path, lambda m, a: a.pop("W_")),
    "a value of the wrong kind": lambda blob, path: _rewrite_state(path, lambda m, a: m["values"].update(k_="7")),
    "a NaN value": lambda blob, path: _rewrite_state(path, lambda m, a: m["values"].update(tau_=float("nan"))),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_state_is_refitted_from_the_bank_with_a_warning(kind, saved_stack, task, annotator, encoder,
                                                                   caplog):
    folder, blob, probs = saved_stack
    state = folder / "bank.cm_stack.npz"
    DAMAGE[kind](blob, state)
    try:
        with caplog.at_level("WARNING", logger="cmalign.labeler"):
            loaded = Labeler.load(folder / "bank.json", annotator, "cm_stack", encoder=encoder)
    finally:
        state.write_bytes(blob)
    assert loaded.refit_reason.startswith(("bank.cm_stack.npz: unreadable", "bank.cm_stack.npz: damaged")), \
        loaded.refit_reason
    assert "fitted again from the bank" in caplog.text and "bank.cm_stack.npz" in caplog.text
    again = loaded.method_.predict_proba(task[4][:100])
    assert np.isfinite(again).all() and np.allclose(again, probs, atol=1e-12)


def test_nan_weights_in_cm_best_s_state_never_give_nan_labels(task, annotator, encoder, tmp_path):
    labels, texts, y, _, new, _ = task
    fitted = Labeler(annotator, "cm_best", encoder=encoder).fit(texts, y, label_set=labels)
    fitted.save(tmp_path / "bank.json")
    _rewrite_state(tmp_path / "bank.cm_best.npz", lambda m, a: a.update(weights_user_=np.full(7, np.nan)))
    loaded = Labeler.load(tmp_path / "bank.json", annotator, "cm_best", encoder=encoder)
    assert loaded.refit_reason == "bank.cm_best.npz: damaged (weights_user_ holds NaN or infinite values)"
    records = [r for chunk in loaded.label(new[:50]) for r in chunk]
    assert all(np.isfinite(r.confidence) for r in records)
    assert records == fitted.method_.records(new[:50])


def test_a_state_saved_with_other_settings_is_refitted(task, annotator, encoder, tmp_path):
    """The identity holds every hyperparameter, grids and sample size included: a state saved with
    another setting (a cmalign whose defaults differed) is fitted again, never read as this one's."""
    labels, texts, y, _, _, _ = task
    Labeler(annotator, "cm_best", encoder=encoder).fit(texts, y, label_set=labels).save(tmp_path / "bank.json")
    with np.load(tmp_path / "bank.cm_best.npz") as data:
        params = json.loads(str(data["__meta__"]))["params"]
    assert params["fractions"] == [0.0, 0.25, 0.5, 0.75, 1.0] and params["sample"] == 4096
    assert {"taus", "ks", "lambdas", "folds", "stack_l2", "name_temperatures", "name_weights", "name_rounds",
            "alphas", "neighbours", "cross_folds", "iterations"} <= set(params)
    for name, value in (("sample", 1000), ("fractions", [0.0, 0.5]), ("taus", [1.0])):
        _rewrite_state(tmp_path / "bank.cm_best.npz", lambda m, a: m["params"].update({name: value}))
        loaded = Labeler.load(tmp_path / "bank.json", annotator, "cm_best", encoder=encoder)
        assert loaded.refit_reason == "bank.cm_best.npz: saved for another params"


def test_a_failed_state_write_leaves_the_old_bank_and_the_old_state(task, annotator, encoder, tmp_path):
    """A full disk while the state is written (here: a file-size limit the bank fits under and the
    state does not) changes neither file: the bank is written only once the state's bytes are."""
    import resource
    import signal

    from cmalign import DataError

    labels, texts, y, _, new, _ = task
    old = Labeler(annotator, "cm_stack", encoder=encoder).fit(texts[:-20], y[:-20], label_set=labels)
    old.save(tmp_path / "bank.json")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bank_size, state_size = (len(before[name]) for name in ("bank.json", "bank.cm_stack.npz"))
    assert bank_size * 2 < state_size // 2
    new_labeler = Labeler(annotator, "cm_stack", encoder=encoder).fit(texts, y, label_set=labels)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (bank_size * 2, hard))
    try:
        with pytest.raises(DataError, match="bank.cm_stack.npz: cannot write"):
            new_labeler.save(tmp_path / "bank.json")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before   # no temporary file left either
    reloaded = Labeler.load(tmp_path / "bank.json", annotator, "cm_stack", encoder=encoder)
    assert reloaded.refit_reason is None
    assert np.array_equal(reloaded.method_.predict_proba(new[:50]), old.method_.predict_proba(new[:50]))
    new_labeler.save(tmp_path / "bank.json")   # without the limit: both files, a matching pair
    assert Labeler.load(tmp_path / "bank.json", annotator, "cm_stack", encoder=encoder).refit_reason is None


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


def test_the_methods_page_lists_every_method_of_the_registry():
    page = (Path(__file__).parents[1] / "docs" / "methods.md").read_text()
    table = page.split("| method | what it does |", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert names == list(METHODS)
    for name, spec in METHODS.items():
        assert f"| `{name}` | {spec.summary} |" in table
