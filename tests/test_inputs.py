"""Inputs people really have, and degenerate ones: each ends as one line naming the file (and line)
with exit 2, or is read as its author meant it."""

import gzip
import json

import pytest

from cmalign import DataError, MemoryBank
from cmalign.cli import main
from cmalign.data import read_items


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_byte_order_mark_is_not_part_of_the_first_field(tmp_path):
    (tmp_path / "excel.csv").write_bytes("\ufefftext,label\nwake me at 7,alarm\n".encode("utf-8"))
    (tmp_path / "bom.jsonl").write_bytes('\ufeff{"text": "wake me at 7", "label": "alarm"}\n'.encode("utf-8"))
    for name, line in (("excel.csv", 1), ("bom.jsonl", 1)):  # a CSV's header is not a row
        (item,) = read_items(tmp_path / name)
        assert (item.text, item.label, item.line) == ("wake me at 7", "alarm", line)


@pytest.mark.parametrize("name", ["p.jsonl", "p.csv"])
def test_a_byte_that_is_not_utf8_is_reported_with_its_line(tmp_path, name):
    rows = ['{"text": "fine", "label": "a"}', '{"text": "caf\xe9", "label": "b"}'] if name.endswith("jsonl") \
        else ["text,label", "fine,a", "caf\xe9,b"]
    (tmp_path / name).write_bytes("\n".join(rows).encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=rf"{name}:{2 if name.endswith('jsonl') else 3}: not UTF-8 text"):
        read_items(tmp_path / name)


@pytest.mark.parametrize("count", [2.7, 1e30, True, 0])
def test_a_bank_count_must_be_a_whole_number_of_samples(tmp_path, count):
    bank = {"format": "cmalign-memory-bank", "version": 1, "annotator": "x", "n_samples": 3, "labels": ["a", "b"],
            "entries": [{"response": "a", "in_label_set": True, "counts": {"a": 1, "b": count}}]}
    (tmp_path / "bank.json").write_text(json.dumps(bank))
    with pytest.raises(DataError, match="bank.json: entry 'a' has a count that is not a whole number"):
        MemoryBank.load(tmp_path / "bank.json")


def test_folders_and_bad_seeds_are_one_line_errors(capsys, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "hi"}\n')
    code, err = run(capsys, "annotate", str(tmp_path / "in.jsonl"), "--bank", str(tmp_path), "-o",
                    str(tmp_path / "out.jsonl"))
    assert code == 2 and f"{tmp_path}: is a folder, not a bank file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists() and not list(tmp_path.glob("*.cmalign-run"))
    (tmp_path / "p.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    code, err = run(capsys, "fit", str(tmp_path / "p.jsonl"), "--labels", str(tmp_path), "-o", str(tmp_path / "b.json"))
    assert code == 2 and "is a folder, not a file" in err and len(err.strip().splitlines()) == 1
    code, err = run(capsys, "bench", "--dataset", "massive_scenario", "--seed", "-1")
    assert code == 2 and "a seed must be a whole number from 0, got '-1'" in err


def test_degenerate_preferences_are_refused_or_named(capsys, tmp_path):
    (tmp_path / "one.jsonl").write_text('{"text": "wake me at 7", "label": "alarm"}\n{"text": "at 8", "label": "alarm"}\n')
    code, err = run(capsys, "fit", str(tmp_path / "one.jsonl"), "-o", str(tmp_path / "bank.json"))
    assert code == 2 and "all 2 preference samples have the label 'alarm'" in err
    assert not (tmp_path / "bank.json").exists()
    (tmp_path / "blank.jsonl").write_text('{"text": "wake me", "label": "alarm"}\n{"text": "  ", "label": "alarm"}\n')
    code, err = run(capsys, "fit", str(tmp_path / "blank.jsonl"), "-o", str(tmp_path / "bank.json"))
    assert code == 2 and "blank.jsonl:2: the text field 'text' is empty" in err
    # a label set larger than the labels the user gave: the fit says which labels it learns nothing about
    (tmp_path / "labels.txt").write_text("alarm\nweather\nmusic\n")
    (tmp_path / "two.jsonl").write_text('{"text": "wake me at 7", "label": "alarm"}\n'
                                        '{"text": "will it rain", "label": "weather"}\n')
    code, err = run(capsys, "fit", str(tmp_path / "two.jsonl"), "--labels", str(tmp_path / "labels.txt"), "-o",
                    str(tmp_path / "bank.json"), "--method", "cm_remap")
    assert code == 0 and "no preference sample has 1 of the 3 labels (music)" in err


def test_bad_input_files_are_one_line_and_exit_2_before_anything_is_written(capsys, tmp_path):
    (tmp_path / "p.jsonl").write_text('{"text": "wake me at 7", "label": "alarm"}\n'
                                      '{"text": "will it rain", "label": "weather"}\n')
    assert main(["fit", str(tmp_path / "p.jsonl"), "-o", str(tmp_path / "bank.json"), "--method", "cm_remap"]) == 0
    capsys.readouterr()
    bad = {"surrogate.jsonl": b'{"text": "ok"}\n{"text": "broken \\ud800"}\n',
           "deep.jsonl": b'{"text": "ok"}\n' + b"[" * 200_000 + b"\n",
           "twice.jsonl": b'{"text": "ok"}\n{"text": "a", "text": "b"}\n',
           "cut.jsonl.gz": gzip.compress(b'{"text": "ok"}\n' * 5000)[:200]}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        out = tmp_path / f"{name}.out.jsonl"
        code, err = run(capsys, "annotate", str(tmp_path / name), "--bank", str(tmp_path / "bank.json"), "-o", str(out))
        assert code == 2 and err.startswith(f"cmalign: error: {tmp_path / name}"), err
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not list(tmp_path.glob(f"{name}.out.jsonl*")), name  # no output, no run record


def test_a_bank_with_n_samples_infinity_is_one_line_naming_the_field(capsys, tmp_path):
    bank = {"format": "cmalign-memory-bank", "version": 1, "annotator": "x", "n_samples": 3, "labels": ["a", "b"],
            "entries": [{"response": "a", "in_label_set": True, "counts": {"a": 2, "b": 1}}]}
    (tmp_path / "bank.json").write_text(json.dumps(bank).replace('"n_samples": 3', '"n_samples": Infinity'))
    (tmp_path / "in.jsonl").write_text('{"text": "hi"}\n')
    code, err = run(capsys, "annotate", str(tmp_path / "in.jsonl"), "--bank", str(tmp_path / "bank.json"), "-o",
                    str(tmp_path / "out.jsonl"))
    assert code == 2 and err == (f"cmalign: error: {tmp_path / 'bank.json'}: malformed memory bank: n_samples is "
                                 "Infinity, not a whole number of at least 1\n")


def test_a_json_label_file_with_null_descriptions_fits_a_bank_without_the_text_none(capsys, tmp_path):
    (tmp_path / "labels.json").write_text('{"alarm": null, "weather": "rain, sun and wind"}')
    (tmp_path / "p.jsonl").write_text('{"text": "wake me at 7", "label": "alarm"}\n'
                                      '{"text": "will it rain", "label": "weather"}\n')
    code, err = run(capsys, "fit", str(tmp_path / "p.jsonl"), "--labels", str(tmp_path / "labels.json"), "-o",
                    str(tmp_path / "bank.json"), "--method", "cm_remap")
    assert code == 0, err
    assert json.loads((tmp_path / "bank.json").read_text())["descriptions"] == ["", "rain, sun and wind"]
