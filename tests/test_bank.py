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


def saved(tmp_path, change) -> str:
    """The message of loading ``make_bank()`` saved, with ``change`` made to its JSON first."""
    data = make_bank().to_json()
    change(data)
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(DataError) as err:
        MemoryBank.load(path)
    assert str(err.value).startswith(f"{path}: ") and len(str(err.value).splitlines()) == 1
    return str(err.value).removeprefix(f"{path}: ")


def test_a_bank_with_infinite_or_fractional_n_samples_names_the_field(tmp_path):
    assert saved(tmp_path, lambda d: d.update(n_samples=float("inf"))) == \
        "malformed memory bank: n_samples is Infinity, not a whole number of at least 1"
    assert saved(tmp_path, lambda d: d.update(n_samples=6.0)) == \
        "malformed memory bank: n_samples is 6.0, not a whole number of at least 1"
    assert saved(tmp_path, lambda d: d.update(seed=True)) == \
        "malformed memory bank: seed is true, not a whole number from 0, or null"


def test_a_hand_edited_bank_whose_counts_disagree_with_its_samples_is_refused(tmp_path):
    def recount(d):  # the counts still add up to n_samples, but no longer to what the samples say
        d["entries"][1]["counts"] = {"card swallowed": 1, "atm support": 2}
    assert saved(tmp_path, recount).startswith(
        "malformed memory bank: the counts of entry 'atm support' ({\"atm support\": 2, \"card swallowed\": 1}) "
        "are not those of the samples with that answer")

    def without_samples(d):  # no samples to compare with: the counts must still add up to n_samples
        d["samples"] = []
        d["entries"][1]["counts"]["atm support"] = 2
    assert saved(tmp_path, without_samples) == \
        "malformed memory bank: the entries' counts add up to 7, but n_samples is 6"


def test_a_stored_sample_with_a_null_text_is_refused_not_read_as_none(tmp_path):
    def null_text(d):
        d["samples"][2]["text"] = None
    assert saved(tmp_path, null_text) == "malformed memory bank: samples[2].text is null, not a string"

    def number_answer(d):
        d["samples"][0]["answer"] = 3
    assert saved(tmp_path, number_answer) == "malformed memory bank: samples[0].answer is 3, not a string"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(version=True), "memory bank version true; this cmalign reads version 1"),
    (lambda d: d.update(version="1"), "memory bank version \"1\"; this cmalign reads version 1"),
    (lambda d: d.update(format=["cmalign-memory-bank"]), "not a cmalign memory bank"),
    (lambda d: d.update(annotator=None), "malformed memory bank: annotator is null, not the annotator's name"),
    (lambda d: d.update(labels="card arrival"), "malformed memory bank: labels is \"card arrival\", not a list"),
    (lambda d: d.update(descriptions=["a"]), "malformed memory bank: 1 descriptions for 4 labels"),
    (lambda d: d["entries"].append(dict(d["entries"][1])), "entries[3].response 'atm support' repeats"),
    (lambda d: d["entries"][0].update(in_label_set="yes"), "entries[0].in_label_set is \"yes\", not true"),
    (lambda d: d["entries"][0].update(counts=[["card swallowed", 2]]), "entries[0].counts is"),
    (lambda d: d.pop("entries"), "malformed memory bank: no field 'entries'"),
])
def test_each_field_of_a_bank_is_checked(tmp_path, change, message):
    assert message in saved(tmp_path, change)


def test_a_bank_naming_a_key_twice_is_refused_with_the_line_and_key(tmp_path):
    path = tmp_path / "bank.json"
    make_bank().save(path)
    lines = path.read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith(' "annotator"'))
    lines.insert(at + 1, ' "annotator": "other",\n')
    path.write_text("".join(lines))
    with pytest.raises(DataError) as err:
        MemoryBank.load(path)
    assert str(err.value) == f"{path}:{at + 2}: the key 'annotator' appears twice in one object (which one is meant?)"


def test_a_bank_without_descriptions_or_samples_still_loads(tmp_path):
    bank = MemoryBank.build([ans("atm support"), ans("pin blocked")], ["card swallowed", "pin blocked"], LABELS,
                            annotator="s")
    data = bank.to_json() | {"descriptions": None, "samples": None, "budget": None, "seed": None}
    (tmp_path / "bank.json").write_text(json.dumps(data))
    assert MemoryBank.load(tmp_path / "bank.json") == bank
