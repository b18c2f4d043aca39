import json

import pytest

from cmalign import DataError, LabelSet, MemoryBank
from cmalign.annotators.base import Annotation

LABELS = LabelSet.of(["card arrival", "card swallowed", "atm support", "pin blocked"])


def ans(raw: str) -> Annotation:
    r = LABELS.resolve(raw)
    return Annotation(raw=raw, key=r.key, label=r.label)


def make_bank() -> MemoryBank:
    answers = [ans("ATM support"), ans("atm_support"), ans("atm support"), ans("Card Arrival"),
               ans("no idea"), ans("No idea!")]
    truth = ["card swallowed", "atm support", "card swallowed", "card arrival", "pin blocked", "pin blocked"]
    texts = [f"text {i}" for i in range(6)]
    return MemoryBank.build(answers, truth, LABELS, annotator="scripted", budget="n=6", seed=3, texts=texts)


def test_counts_are_keyed_by_the_normalised_answer():
    bank = make_bank()
    entry = bank.lookup("atm support")
    assert entry.counts == (("card swallowed", 2), ("atm support", 1))  # most frequent first
    assert entry.total == 3 and entry.in_label_set
    assert bank.candidates("card arrival") == ("card arrival",)
    # out-of-set answers are bank keys too, and reach the same key however they were written
    assert bank.candidates(LABELS.resolve("NO IDEA").key) == ("pin blocked",)
    assert not bank.lookup("no idea").in_label_set
    assert bank.candidates("pin blocked") == ()


def test_ties_in_counts_follow_label_order():
    bank = MemoryBank.build([ans("atm support")] * 2, ["pin blocked", "card arrival"], LABELS, annotator="s")
    assert bank.candidates("atm support") == ("card arrival", "pin blocked")


def test_save_and_load_give_back_the_same_bank(tmp_path):
    bank = make_bank()
    bank.save(tmp_path / "bank.json")
    data = json.loads((tmp_path / "bank.json").read_text())
    assert data["labels"] == list(LABELS.labels) and data["annotator"] == "scripted"
    assert data["n_samples"] == 6 and data["budget"] == "n=6"
    loaded = MemoryBank.load(tmp_path / "bank.json")
    assert loaded == bank
    assert loaded.samples[0].text == "text 0" and loaded.samples[0].answer == "atm support"
    assert list(loaded.entries) == list(bank.entries)


def test_preference_label_outside_the_set():
    with pytest.raises(DataError, match="not in the label set"):
        MemoryBank.build([ans("atm support")], ["lost card"], LABELS, annotator="s")


def test_empty_preferences():
    with pytest.raises(DataError, match="no preference samples"):
        MemoryBank.build([], [], LABELS, annotator="s")


@pytest.mark.parametrize("content, problem", [
    ('{"format": "cmalign-memory-bank",\n "version": 1,\n', "not valid JSON"),
    ('{"labels": []}', "not a cmalign memory bank"),
    ('{"format": "cmalign-memory-bank", "version": 99}', "version 99"),
    ('{"format": "cmalign-memory-bank", "version": 1, "annotator": "s", "n_samples": 1, "labels": ["a"],'
     ' "entries": [{"response": "a", "counts": {"b": 1}}]}', "outside the bank's label set"),
    ('{"format": "cmalign-memory-bank", "version": 1, "labels": ["a"]}', "malformed memory bank"),
])
def test_bad_bank_files_name_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bank.json"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as err:
        MemoryBank.load(path)
    assert str(path) in str(err.value)
