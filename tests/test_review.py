"""`cmalign review`: the user's labels that look wrong come first, then the least sure labelled items;
every preference sample is there once with its out-of-fold prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmalign import LabelSet, MemoryBank
from cmalign.cli import main
from cmalign.data import load_bundled
from cmalign.errors import CmalignError, DataError
from cmalign.review import ReviewRow, least_confident, preference_rows


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """240 preference samples of massive_scenario, 24 of them (seeded) given a wrong label."""
    ds = load_bundled("massive_scenario")
    rng = np.random.default_rng(7)
    items = [ds.large[i] for i in np.sort(rng.choice(len(ds.large), size=240, replace=False))]
    labels = ds.labels.labels
    wrong = set(rng.choice(len(items), size=24, replace=False).tolist())
    rows = []
    for i, item in enumerate(items):
        label = item.label
        if i in wrong:
            label = labels[(labels.index(label) + int(rng.integers(1, len(labels)))) % len(labels)]
        rows.append({"text": item.text, "label": label})
    folder = tmp_path_factory.mktemp("review")
    prefs = folder / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["fit", str(prefs), "-o", str(folder / "bank.json")]) == 0
    unlabelled = folder / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small[:300]), encoding="utf-8")
    assert main(["annotate", str(unlabelled), "--bank", str(folder / "bank.json"), "-o", str(folder / "out.jsonl")]) == 0
    return folder, {i + 1 for i in wrong}


def test_review_ranks_the_wrong_labels_first(flipped, capsys):
    folder, wrong = flipped
    out = folder / "review.jsonl"
    assert main(["review", "--bank", str(folder / "bank.json"), "--labelled", str(folder / "out.jsonl"),
                 "--n", "30", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    preference = [r for r in rows if r["kind"] == "preference"]
    assert sorted(r["line"] for r in preference) == list(range(1, 241))  # every sample, once
    top = {r["line"] for r in preference[:2 * len(wrong)]}
    assert len(top & wrong) >= 0.7 * len(wrong), (len(top & wrong), len(wrong))
    labelled = [r for r in rows if r["kind"] == "labelled"]
    assert len(labelled) == 30
    assert [r["confidence"] for r in labelled] == sorted(r["confidence"] for r in labelled)
    everything = [json.loads(line) for line in (folder / "out.jsonl").read_text().splitlines()]
    assert labelled[-1]["confidence"] <= sorted(r["confidence"] for r in everything)[29]
    # the same command again gives the same file; an existing output is not replaced without --overwrite
    again = folder / "again.jsonl"
    assert main(["review", "--bank", str(folder / "bank.json"), "--labelled", str(folder / "out.jsonl"),
                 "--n", "30", "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    before = out.read_bytes()
    assert main(["review", "--bank", str(folder / "bank.json"), "-o", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err and out.read_bytes() == before


def test_review_of_a_bad_labelled_file_fails_before_any_model(flipped, tmp_path, capsys):
    folder, _ = flipped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "weather", "confidence": 0.5}\n{"text": "b", "label": "weather"}\n')
    assert main(["review", "--bank", str(folder / "bank.json"), "--labelled", str(bad),
                 "-o", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "no confidence" in err
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("line, problem", [
    ('{"line": 2, "text": "b", "label": "c", "confidence": 0.5}', "label 'c' is not one of the bank's labels"),
    ('{"line": 2, "text": "b", "label": "a", "confidence": NaN}', "NaN is not a number JSON allows"),  # the reader refuses it
    ('{"line": 2, "text": "b", "label": "a", "confidence": Infinity}', "Infinity is not a number JSON allows"),
    ('{"line": 2, "text": "b", "label": "a", "confidence": 1.5}', "confidence 1.5: must be"),
    ('{"line": 2, "text": "b", "label": "a", "confidence": -0.1}', "confidence -0.1: must be"),
    ('{"line": 2.5, "text": "b", "label": "a", "confidence": 0.5}', "line 2.5: must be a whole number"),
    ('{"line": "2", "text": "b", "label": "a", "confidence": 0.5}', "line '2': must be a whole number"),
    ('{"line": true, "text": "b", "label": "a", "confidence": 0.5}', "line True: must be a whole number"),
    ('{"line": 2, "text": null, "label": "a", "confidence": 0.5}', "text None: must be a string"),
])
def test_labelled_lines_that_no_bank_could_have_written_are_refused(tmp_path, line, problem):
    path = tmp_path / "out.jsonl"
    path.write_text('{"line": 1, "text": "a", "label": "b", "confidence": 0.25}\n' + line + "\n")
    with pytest.raises(DataError) as error:
        least_confident(path, 10, LabelSet(("a", "b")))
    assert (error.value.path, error.value.line) == (str(path), 2) and problem in error.value.problem


def test_review_of_a_file_labelled_with_another_bank_fails_before_any_model(flipped, tmp_path, capsys):
    folder, _ = flipped
    other = tmp_path / "other.jsonl"
    other.write_text('{"line": 1, "text": "a", "label": "weather", "confidence": 0.5}\n'
                     '{"line": 2, "text": "b", "label": "not_a_scenario", "confidence": 0.5}\n')
    assert main(["review", "--bank", str(folder / "bank.json"), "--labelled", str(other),
                 "-o", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{other}:2: label 'not_a_scenario' is not one of the bank's labels" in err
    assert not (tmp_path / "r.jsonl").exists()


def test_no_nan_reaches_the_review_file(flipped):
    folder, _ = flipped
    bank = MemoryBank.load(folder / "bank.json")
    probs = np.full((bank.n_samples, len(bank.labels)), 1 / len(bank.labels))
    flagged, agreed = preference_rows(bank, probs)
    assert len(flagged) + len(agreed) == bank.n_samples
    probs[7, 3] = np.nan  # what a method with NaN weights gives
    with pytest.raises(CmalignError, match="preference sample 8"):
        preference_rows(bank, probs)
    for confidence, given in ((float("nan"), 0.5), (0.5, float("inf")), (1.5, None)):
        with pytest.raises(ValueError, match="must be a number from 0 to 1"):
            ReviewRow(1, "preference", 1, "text", "weather", "weather", confidence, given, "why")
