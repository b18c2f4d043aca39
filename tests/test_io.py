import csv
import gzip
import json

import pytest

from cmalign import DataError, LabelSet
from cmalign.data import check_labels, read_items, read_labelset
from cmalign.data.io import json_lines


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
    # line is the data row: the header is not one
    assert [(i.text, i.label, i.line) for i in items] == [("printer, on fire", "ops", 1),
                                                          ("refund please", "billing", 2)]


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


def test_a_key_twice_in_one_object_is_refused_with_line_and_key(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", "label": "x", "label": "y"}\n')
    with pytest.raises(DataError) as err:
        read_items(f)
    assert str(err.value) == f"{f}:3: the key 'label' appears twice in one object (which one is meant?)"
    nested = write(tmp_path / "n.jsonl", '{"text": "a", "meta": {"id": 1, "id": 2}}\n')
    with pytest.raises(DataError, match=r"n.jsonl:1: the key 'id' appears twice"):
        read_items(nested)


def test_lines_read_through_json_lines_refuse_repeated_keys_and_non_finite_numbers(tmp_path):
    # the reader of review and labelled files (cmalign review, report)
    f = write(tmp_path / "review.jsonl", '{"rank": 1}\n{"rank": 2, "rank": 3}\n')
    with pytest.raises(DataError, match=r"review.jsonl:2: the key 'rank' appears twice"):
        list(json_lines(f))
    f = write(tmp_path / "labelled.jsonl", '{"label": "a", "confidence": 0.5}\n{"label": "a", "confidence": NaN}\n')
    with pytest.raises(DataError, match=r"labelled.jsonl:2: NaN is not a number JSON allows"):
        list(json_lines(f))


@pytest.mark.parametrize("value, problem", [
    ("NaN", "NaN is not a number JSON allows"),
    ("-Infinity", "-Infinity is not a number JSON allows"),
    ("1e400", "the number 1e400 is too large (not finite)"),
    ("9" * 5000, "not valid JSON: a number of more than 4300 digits"),
])
def test_a_number_json_does_not_allow_is_refused_with_its_line(tmp_path, value, problem):
    f = write(tmp_path / "p.jsonl", f'{{"text": "a"}}\n{{"text": "b", "score": {value}}}\n')
    with pytest.raises(DataError) as err:
        read_items(f)
    assert str(err.value) == f"{f}:2: {problem}"


def test_a_lone_surrogate_is_refused_with_its_line_and_a_pair_is_read(tmp_path):
    f = write(tmp_path / "p.jsonl", '{"text": "caf\\u00e9 \\ud83d\\ude00"}\n{"text": "broken \\ud800 here"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: a lone surrogate .* cannot be written as UTF-8"):
        read_items(f)
    assert read_items(write(tmp_path / "q.jsonl", '{"text": "\\ud83d\\ude00"}\n'))[0].text == "\U0001f600"
    key = write(tmp_path / "k.jsonl", '{"text": "a", "\\udc00": 1}\n')
    with pytest.raises(DataError, match=r"k.jsonl:1: a lone surrogate"):
        read_items(key)


@pytest.mark.parametrize("name", ["p.jsonl", "p.json"])
def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path, name):
    f = write(tmp_path / name, '{"text": "a"}\n' + "[" * 200_000 + "\n" if name == "p.jsonl" else "[" * 200_000)
    with pytest.raises(DataError, match="not valid JSON: nested too deeply to read"):
        read_items(f)


@pytest.mark.parametrize("damage", ["cut", "checksum", "not gzip"])
def test_a_damaged_gzip_file_is_one_error(tmp_path, damage):
    lines = {"p.jsonl.gz": [json.dumps({"text": f"t{n}"}) for n in range(2000)],
             "p.csv.gz": ["text"] + [f"t{n}" for n in range(2000)]}
    lines["p.json.gz"] = lines["p.jsonl.gz"]
    for name, rows in lines.items():
        packed = bytearray(gzip.compress("\n".join(rows).encode()))
        if damage == "cut":  # EOFError inside gzip
            packed = packed[: len(packed) // 2]
        elif damage == "checksum":  # BadGzipFile: CRC check failed
            packed[-6] ^= 0xFF
        else:
            packed = bytearray(b"plain text, not gzip\n")
        (tmp_path / name).write_bytes(bytes(packed))
        with pytest.raises(DataError, match=rf"{name}: damaged or not gzip data"):
            read_items(tmp_path / name)
        if name == "p.jsonl.gz":
            with pytest.raises(DataError, match="damaged or not gzip data"):
                list(json_lines(tmp_path / name))
    packed = gzip.compress(b'{"text": "a"}\n' * 1000)
    (tmp_path / "z.jsonl.gz").write_bytes(packed[:10] + bytes(20) + packed[30:])  # zlib.error
    with pytest.raises(DataError, match=r"z.jsonl.gz: damaged or not gzip data \(Error -3"):
        read_items(tmp_path / "z.jsonl.gz")


def test_an_upper_case_gz_suffix_is_decompressed(tmp_path):
    (tmp_path / "P.JSONL.GZ").write_bytes(gzip.compress(b'{"text": "hi", "label": "x"}\n'))
    (tmp_path / "T.CSV.GZ").write_bytes(gzip.compress(b"text,label\nhi,x\n"))
    assert [(i.text, i.label) for i in read_items(tmp_path / "P.JSONL.GZ")] == [("hi", "x")]
    assert [(i.text, i.label, i.line) for i in read_items(tmp_path / "T.CSV.GZ")] == [("hi", "x", 1)]


def test_a_csv_cell_over_the_csv_limit_is_refused_with_its_line(tmp_path):
    limit = csv.field_size_limit()
    f = write(tmp_path / "t.csv", f"text,label\nshort,a\n{'x' * limit},b\n{'y' * (limit + 1)},c\n")
    with pytest.raises(DataError) as err:
        read_items(f)
    assert str(err.value).startswith(f"{f}:4: a cell longer than 131,072 characters")
    assert csv.field_size_limit() == limit  # the process's setting is left alone


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"t.csv:1: the column 'text' appears twice in the header"):
        read_items(write(tmp_path / "t.csv", "text,label,text\na,x,b\n"))
    assert [(i.text, i.line) for i in read_items(write(tmp_path / "u.tsv", "text\tlabel\n\na\tx\n"))] == [("a", 1)]


def test_a_json_label_file_with_null_descriptions_has_none_and_other_types_are_refused(tmp_path):
    labels = read_labelset(write(tmp_path / "l.json", '{"alarm": null, "weather": "rain and sun", "music": null}'))
    assert labels.labels == ("alarm", "weather", "music")
    assert labels.descriptions == ("", "rain and sun", "") and labels.readable() == ["alarm", "rain and sun", "music"]
    assert read_labelset(write(tmp_path / "n.json", '{"alarm": null, "music": null}')).descriptions == ()
    with pytest.raises(DataError) as err:
        read_labelset(write(tmp_path / "l.json", '{\n "alarm": null,\n "music": 3\n}'))
    assert str(err.value) == (f"{tmp_path / 'l.json'}:3: the description of 'music' is a number: expected a "
                              "string, or null for none")


def test_label_set_errors_name_the_file_and_the_line(tmp_path):
    cases = [
        ("l.json", '[\n "alarm",\n null\n]', r"l.json:3: expected a label \(a string\), got null"),
        ("l.json", '[\n "alarm",\n "music",\n "alarm"\n]', "l.json:4: label 'alarm' repeats line 2"),
        ("l.json", '{\n "alarm": "a",\n "alarm": "b"\n}', "l.json:3: the key 'alarm' appears twice"),
        ("l.json", '{\n "alarm": "a",\n "Alarm!": "b"\n}',
         r"l.json:3: label 'Alarm!' is the same as 'alarm' \(line 2\) once case"),
        ("l.json", '["a",\n "b",\n "\\ud800"]', "l.json:3: a lone surrogate"),
        ("l.json", '["a",\n "b",\n ', "l.json:3: not valid JSON"),
        ("l.txt", "# labels\nalarm\n\nAlarm\n", r"l.txt:4: label 'Alarm' is the same as 'alarm' \(line 2\)"),
        ("l.txt", "alarm\n...\tdots\n", r"l.txt:2: label '...' is empty once normalised"),
        ("l.txt", b"alarm\nm\xfcsic\n", "l.txt:2: not UTF-8 text"),
    ]
    for name, content, message in cases:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DataError, match=message):
            read_labelset(path)
