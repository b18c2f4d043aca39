import gzip
import json

import pytest

from cmalign import DataError, LabelSet
from cmalign.data import check_labels, read_items, read_labelset


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_reads_text_and_label_with_line_numbers(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"input": "a", "label": "x"}\n\n{"input": "b", "label": "y"}\n')
    items = read_items(f, require_labels=True)
    assert [(i.text, i.label, i.line) for i in items] == [("a", "x", 1), ("b", "y", 3)]


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError) as err:
        read_items(f)
    assert err.value.line == 2 and str(f) in str(err.value) and "not valid JSON" in str(err.value)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"text": "a"}\n["b"]\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: expected a JSON object"):
        read_items(f)


def test_missing_text_on_a_later_line(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"text": "a"}\n{"txt": "b"}\n')
    with pytest.raises(DataError, match=r":2: the text field 'text' is missing"):
        read_items(f)


def test_csv_with_configured_columns(tmp_path):
    f = write(tmp_path / "t.csv", 'id,body,team\n1,"printer, on fire",ops\n2,refund please,billing\n')
    items = read_items(f, text_field="body", label_field="team", require_labels=True)
    assert [(i.text, i.label, i.line) for i in items] == [("printer, on fire", "ops", 2),
                                                          ("refund please", "billing", 3)]


def test_csv_without_the_text_column_names_the_column(tmp_path):
    f = write(tmp_path / "t.csv", "id,body\n1,hello\n")
    with pytest.raises(DataError) as err:
        read_items(f)
    assert err.value.column == "text or input"
    assert "body" in str(err.value) and str(f) in str(err.value)


def test_csv_row_with_too_many_cells(tmp_path):
    f = write(tmp_path / "t.csv", "text,label\na,x\nb,y,z\n")
    with pytest.raises(DataError, match=r"t.csv:3: more cells"):
        read_items(f)


def test_tsv_and_gzip(tmp_path):
    tsv = write(tmp_path / "t.tsv", "text\tlabel\nhello, world\tgreet\n")
    assert read_items(tsv)[0].text == "hello, world"
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(json.dumps({"text": "hi", "label": 3}).encode()))
    assert read_items(gz)[0].label == "3"  # numeric labels are read as their text


def test_empty_file_and_required_labels(tmp_path):
    with pytest.raises(DataError, match="holds no items"):
        read_items(write(tmp_path / "e.jsonl", "\n"))
    assert read_items(write(tmp_path / "e2.jsonl", ""), allow_empty=True) == []
    with pytest.raises(DataError, match=r":2: the label field 'label' is missing or empty"):
        read_items(write(tmp_path / "l.jsonl", '{"text":"a","label":"x"}\n{"text":"b","label":""}\n'),
                   require_labels=True)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown file type"):
        read_items(write(tmp_path / "p.txt", "x"))
    with pytest.raises(DataError, match="no such file"):
        read_items(tmp_path / "absent.jsonl")


def test_labelset_file_with_descriptions_comments_and_duplicates(tmp_path):
    f = write(tmp_path / "labels.txt", "# my taxonomy\niot\tsmart home devices\n\nqa\n")
    labels = read_labelset(f)
    assert labels.labels == ("iot", "qa") and labels.readable() == ["smart home devices", "qa"]
    with pytest.raises(DataError, match=r"labels.txt:3: label 'a' repeats line 1"):
        read_labelset(write(tmp_path / "labels.txt", "a\nb\na\n"))
    assert read_labelset(write(tmp_path / "l.json", '{"a": "alpha", "b": ""}')).labels == ("a", "b")


def test_check_labels_canonicalises_and_rejects_unknown(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"text":"a","label":"Card_Arrival"}\n{"text":"b","label":"nope"}\n')
    items = read_items(f)
    labels = LabelSet.of(["card arrival"])
    assert check_labels(items[:1], labels, f)[0].label == "card arrival"
    with pytest.raises(DataError, match=r"p.jsonl:2: label 'nope' is not in the label set"):
        check_labels(items, labels, f)
