"""Parquet input, ``cmalign export`` and Label Studio exports read back, on a real annotate output."""

import csv
import datetime
import json
import sys
import xml.etree.ElementTree as ET

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cmalign import DataError, LabelSet, MemoryBank
from cmalign.cli import main
from cmalign.data import iter_items, load_bundled, load_folder, read_items, read_preferences
from cmalign.data import io as data_io
from cmalign.interchange import export


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """A real ``annotate`` output: a bank fitted on 200 bundled utterances, then 40 others labelled,
    read from a Parquet file (so annotate's streaming Parquet input is exercised too)."""
    root = tmp_path_factory.mktemp("interchange")
    ds = load_bundled("massive_scenario")
    write_jsonl(root / "prefs.jsonl", [{"text": i.text, "label": i.label} for i in ds.large[:200]])
    pq.write_table(pa.table({"id": list(range(40)), "text": [i.text for i in ds.small[:40]]}), root / "inbox.parquet",
                   row_group_size=16)
    assert main(["fit", str(root / "prefs.jsonl"), "-o", str(root / "bank.json")]) == 0
    out = root / "labelled.jsonl"
    assert main(["annotate", str(root / "inbox.parquet"), "--bank", str(root / "bank.json"), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, 41))  # Parquet rows number the items
    assert [r["text"] for r in rows] == [i.text for i in ds.small[:40]]
    return root, rows


def accept_predictions(tasks):
    """What a reviewer accepting every pre-annotation in Label Studio leaves in its JSON export."""
    for n, task in enumerate(tasks, start=1):
        task["id"] = n
        accepted = [dict(region, id=f"r{n}") for region in task["predictions"][0]["result"]]
        task["annotations"] = [{"id": 100 + n, "result": accepted, "was_cancelled": False, "ground_truth": False,
                                "created_at": "2026-11-27T10:00:00.000000Z",
                                "updated_at": "2026-11-27T10:00:00.000000Z", "task": n}]
    return tasks


def test_label_studio_round_trip_loses_nothing(capsys, annotated):
    root, rows = annotated
    tasks_file = root / "tasks.json"
    code, _, err = run(capsys, "export", root / "labelled.jsonl", "-o", tasks_file)
    assert code == 0, err
    tasks = json.loads(tasks_file.read_text())
    assert len(tasks) == len(rows)
    for row, task in zip(rows, tasks):
        (prediction,) = task["predictions"]
        (region,) = prediction["result"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "choices")
        assert region["value"] == {"choices": [row["label"]]}
        assert prediction["model_version"] == f"cmalign {row['method']}" and prediction["score"] == row["confidence"]
        rebuilt = dict(task["data"], label=region["value"]["choices"][0],
                       method=prediction["model_version"].removeprefix("cmalign "), confidence=prediction["score"])
        assert rebuilt == row  # every field of the line is in the task
    config = ET.parse(root / "tasks.label-config.xml").getroot()
    assert config.find("Text").attrib == {"name": "text", "value": "$text"}
    choices = config.find("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "text", "single")
    assert [c.get("value") for c in choices] == list(dict.fromkeys(r["label"] for r in rows))

    reviewed = root / "project-1-export.json"
    reviewed.write_text(json.dumps(accept_predictions(tasks), indent=2))
    items = read_items(reviewed, require_labels=True)
    assert [(i.text, i.label, i.line) for i in items] == [(r["text"], r["label"], r["line"]) for r in rows]


def test_parquet_export_keeps_every_field_and_value(capsys, annotated):
    root, rows = annotated
    target = root / "labelled.parquet"
    code, _, err = run(capsys, "export", root / "labelled.jsonl", "-o", target)
    assert code == 0, err
    table = pq.read_table(target)
    assert table.column_names == list(rows[0])
    assert table.to_pylist() == rows
    assert [(i.text, i.label, i.line) for i in iter_items(target)] == [(r["text"], r["label"], r["line"]) for r in rows]


def test_csv_export_has_every_column_and_json_lists(capsys, annotated, tmp_path):
    root, rows = annotated
    target = tmp_path / "labelled.csv"
    code, _, err = run(capsys, "export", root / "labelled.jsonl", "-o", target)
    assert code == 0, err
    with open(target, newline="", encoding="utf-8") as handle:
        back = list(csv.DictReader(handle))
    assert len(back) == len(rows)
    for row, cells in zip(rows, back):
        assert cells["text"] == row["text"] and cells["label"] == row["label"]
        assert json.loads(cells["candidates"]) == row["candidates"]
        assert float(cells["confidence"]) == row["confidence"] and int(cells["line"]) == row["line"]


def test_lines_without_a_field_get_an_empty_parquet_cell(tmp_path):
    source = write_jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": "x", "confidence": 1},
                                                {"text": "b", "label": "y", "action": "keep", "confidence": 0.5}])
    assert main(["export", str(source), "-o", str(tmp_path / "l.parquet")]) == 0
    assert pq.read_table(tmp_path / "l.parquet").to_pylist() == [
        {"text": "a", "label": "x", "confidence": 1.0, "action": None},
        {"text": "b", "label": "y", "confidence": 0.5, "action": "keep"}]


def test_parquet_rows_are_numbered_across_batches_and_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(data_io, "PARQUET_BATCH_ROWS", 4)
    texts = [f"text {n}" for n in range(11)]
    pq.write_table(pa.table({"text": texts, "label": ["a", "b"] * 5 + ["a"]}), tmp_path / "t.parquet", row_group_size=3)
    items = read_items(tmp_path / "t.parquet", require_labels=True)
    assert [(i.text, i.line) for i in items] == [(t, n) for n, t in enumerate(texts, start=1)]


def test_bench_data_folder_may_hold_parquet(tmp_path):
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}), tmp_path / "small.parquet")
    ds = load_folder(tmp_path)
    assert [(i.text, i.label, i.line) for i in ds.small] == [("a", "x", 1), ("b", "y", 2), ("c", "x", 3)]
    assert ds.large is None and ds.labels == LabelSet(("x", "y"))


def test_parquet_without_the_text_column_names_the_column(tmp_path):
    pq.write_table(pa.table({"body": ["hello"]}), tmp_path / "t.parquet")
    with pytest.raises(DataError) as err:
        read_items(tmp_path / "t.parquet")
    assert err.value.column == "text or input" and "'body'" in str(err.value)


def test_parquet_null_text_names_the_row(tmp_path):
    pq.write_table(pa.table({"text": ["a", None, "c"], "label": ["x", "y", "z"]}), tmp_path / "t.parquet")
    with pytest.raises(DataError) as err:
        read_items(tmp_path / "t.parquet")
    assert str(err.value) == f"{tmp_path / 't.parquet'}: row 2: the text field 'text' is missing"


def test_parquet_text_that_is_not_a_string(tmp_path):
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t.parquet: row 1: the text field 'text' is a int, not a string"):
        read_items(tmp_path / "t.parquet")


def test_a_file_that_is_not_parquet(tmp_path):
    (tmp_path / "t.parquet").write_text("text\nhello\n")
    with pytest.raises(DataError, match=r"t.parquet: not a readable Parquet file"):
        read_items(tmp_path / "t.parquet")


def test_without_pyarrow_parquet_is_one_clear_line(tmp_path, monkeypatch, capsys):
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "t.parquet")
    write_jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": "x"}])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError) as err:
        read_items(tmp_path / "t.parquet")
    assert str(err.value) == "reading .parquet needs pyarrow: pip install 'cmalign[parquet]'"
    code, _, stderr = run(capsys, "export", tmp_path / "l.jsonl", "-o", tmp_path / "l.parquet")
    assert code == 2 and stderr == "cmalign: error: writing .parquet needs pyarrow: pip install 'cmalign[parquet]'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.jsonl", "t.parquet"]  # nothing half-written


def test_export_refuses_to_overwrite(capsys, tmp_path):
    source = write_jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": "x"}])
    target = tmp_path / "out.json"
    target.write_text("mine")
    code, _, err = run(capsys, "export", source, "-o", target)
    assert code == 2 and err == f"cmalign: error: {target}: exists already: --overwrite to replace it\n"
    assert target.read_text() == "mine" and not (tmp_path / "out.label-config.xml").exists()
    target.unlink()
    (tmp_path / "out.label-config.xml").write_text("mine too")  # the config beside it is the user's as much
    code, _, err = run(capsys, "export", source, "-o", target)
    assert code == 2 and "out.label-config.xml: exists already" in err and not target.exists()
    code, _, err = run(capsys, "export", source, "-o", target, "--overwrite")
    assert code == 0, err
    assert json.loads(target.read_text())[0]["data"]["text"] == "a"
    assert '<Choice value="x"/>' in (tmp_path / "out.label-config.xml").read_text()


def test_export_of_a_line_without_text_writes_nothing(capsys, tmp_path):
    source = tmp_path / "l.jsonl"
    source.write_text('{"text": "a", "label": "x"}\n\n{"label": "y"}\n')
    for target in ("out.parquet", "out.csv", "out.jsonl", "out.json"):
        code, _, err = run(capsys, "export", source, "-o", tmp_path / target)
        assert code == 2, target
        assert err == f"cmalign: error: {source}:3: no text field 'text or input'; the fields are ['label']\n"
    (tmp_path / "empty.jsonl").write_text("\n")
    code, _, err = run(capsys, "export", tmp_path / "empty.jsonl", "-o", tmp_path / "out.parquet")
    assert code == 2 and "empty.jsonl: the file holds no items" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl", "l.jsonl"]


def test_export_from_parquet_writes_dates_as_text_and_names_rows(tmp_path):
    day = datetime.date(2026, 11, 27)
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"], "seen": [day, day]}), tmp_path / "in.parquet")
    assert main(["export", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.jsonl")]) == 0
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [
        {"text": "a", "label": "x", "seen": "2026-11-27"}, {"text": "b", "label": "y", "seen": "2026-11-27"}]
    pq.write_table(pa.table({"text": ["a", " "]}), tmp_path / "blank.parquet")
    with pytest.raises(DataError, match=r"blank.parquet: row 2: the text field 'text' is empty"):
        export(tmp_path / "blank.parquet", tmp_path / "blank.json")


def test_export_with_a_label_set_lists_all_its_labels_and_checks_the_data(capsys, tmp_path):
    source = write_jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": "Billing"}, {"text": "b", "label": "ops"}])
    (tmp_path / "labels.txt").write_text("ops\nbilling\nlegal\n")
    code, _, err = run(capsys, "export", source, "-o", tmp_path / "t.json", "--labels", tmp_path / "labels.txt")
    assert code == 0, err
    choices = ET.parse(tmp_path / "t.label-config.xml").getroot().find("Choices")
    assert [c.get("value") for c in choices] == ["ops", "billing", "legal"]
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert [t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks] == [["billing"], ["ops"]]
    (tmp_path / "labels.txt").write_text("ops\nlegal\n")
    code, _, err = run(capsys, "export", source, "-o", tmp_path / "u.json", "--labels", tmp_path / "labels.txt")
    assert code == 2 and f"{source}:1: label 'Billing' is not in the label set" in err
    assert not (tmp_path / "u.json").exists() and not list(tmp_path.glob(".u.json*"))  # no temporary file left


def task(text, *annotations, **data):
    return {"data": {"text": text, **data}, "annotations": list(annotations)}


def annotation(label, *, cancelled=False, created=None, updated=None, id=None):
    out = {"result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
           "was_cancelled": cancelled}
    out |= {k: v for k, v in (("created_at", created), ("updated_at", updated), ("id", id)) if v is not None}
    return out


def test_a_cancelled_annotation_does_not_count(tmp_path):
    project = tmp_path / "export.json"
    project.write_text(json.dumps([
        task("first", annotation("pos", created="2026-01-01T10:00:00Z"),
             annotation("neg", cancelled=True, created="2026-01-02T10:00:00Z")),
        task("second", annotation("neg", created="2026-01-03T10:00:00Z", updated="2026-01-05T10:00:00Z"),
             annotation("pos", created="2026-01-04T10:00:00Z")),  # the earlier one was edited later
        task("third", annotation("pos"), annotation("neg")),  # no time stamps: the list's order
        task("fourth", annotation("neg", cancelled=True)),
    ]))
    items = read_items(project)
    assert [(i.text, i.label, i.line) for i in items] == [("first", "pos", 1), ("second", "neg", 2),
                                                         ("third", "neg", 3), ("fourth", None, 4)]
    with pytest.raises(DataError, match=r"export.json: task 4: has no annotation"):
        read_items(project, require_labels=True)
    preferences = read_preferences(project)
    assert [i.line for i in preferences.items] == [1, 2, 3] and preferences.unannotated == 1


@pytest.mark.parametrize("content, message", [
    ('[{"data": {"text": "a"}}, {"dat', r"export.json:1: not valid JSON"),
    ('[{"data": {"text": "a"}}, {"text": "b", "label": "x"}]', r"export.json: task 2: expected a Label Studio task"),
    ('[{"data": {"body": "a"}}]',
     r"export.json: task 1: its data has no text field 'text or input'; the fields are \['body'\]"),
    ('[{"data": {"text": null}}]', r"export.json: task 1: the text field 'text' is null"),
    (json.dumps([task("a", {"id": 7, "result": [{"type": "choices", "from_name": "s",
                                                  "value": {"choices": ["x", "y"]}}]})]),
     r"export.json: task 1: annotation 7 has several choices \(x, y\)"),
    (json.dumps([task("a", {"id": 7, "result": []})]), r"export.json: task 1: annotation 7 has no choice"),
    (json.dumps([task("a", {"result": [{"type": "choices", "from_name": "s", "value": {"choices": ["x"]}},
                                       {"type": "choices", "from_name": "t", "value": {"choices": ["y"]}}]})]),
     r"export.json: task 1: the annotation answers several Choices controls \(s, t\); name the one"),
])
def test_bad_label_studio_exports_are_one_line_naming_the_task(tmp_path, content, message):
    (tmp_path / "export.json").write_text(content)
    with pytest.raises(DataError, match=message):
        read_items(tmp_path / "export.json")


def test_label_field_names_the_choices_control(tmp_path):
    (tmp_path / "export.json").write_text(json.dumps([task("a", {"result": [
        {"type": "choices", "from_name": "s", "value": {"choices": ["x"]}},
        {"type": "choices", "from_name": "t", "value": {"choices": ["y"]}}]})]))
    assert read_items(tmp_path / "export.json", label_field="t")[0].label == "y"


def test_a_json_file_of_json_lines_is_still_read_as_jsonl(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('\ufeff  {"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n', encoding="utf-8")
    assert [(i.text, i.label, i.line) for i in read_items(f)] == [("a", "x", 1), ("b", "y", 3)]


def test_fit_on_a_label_studio_export(capsys, tmp_path):
    ds = load_bundled("massive_scenario")
    pref = ds.large[:120]
    tasks = [task(i.text, annotation(i.label, id=n)) if n % 4 else task(i.text) for n, i in enumerate(pref)]
    tasks[1]["annotations"].append(annotation("cooking", cancelled=True, created="2030-01-01T00:00:00Z"))
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    code, _, err = run(capsys, "fit", tmp_path / "export.json", "-o", tmp_path / "bank.json")
    assert code == 0, err
    annotated = [i for n, i in enumerate(pref) if n % 4]
    assert f"on {len(annotated)} preference samples (30 Label Studio tasks without an annotation left out)" in err
    bank = MemoryBank.load(tmp_path / "bank.json")
    assert [(s.text, s.label) for s in bank.samples] == [(i.text, i.label) for i in annotated]
    assert bank.labels == LabelSet.of(i.label for i in annotated)

    (tmp_path / "none.json").write_text(json.dumps([task(i.text) for i in pref[:3]]))
    code, _, err = run(capsys, "fit", tmp_path / "none.json", "-o", tmp_path / "bank2.json")
    assert code == 2 and err == (f"cmalign: error: {tmp_path / 'none.json'}: none of its 3 tasks has an annotation "
                                 "(one not cancelled) to learn from\n")


def choices_task(value):
    return {"data": {"text": "wake me at 7"},
            "annotations": [{"id": 9, "result": [{"type": "choices", "from_name": "label", "value": value}]}]}


@pytest.mark.parametrize("value, message", [
    ({"choices": "alarm"}, "annotation 9 has 'choices' \"alarm\": a choices region holds"),
    ({"choices": None}, "annotation 9 has 'choices' null"),
    ({"choices": {"alarm": True}}, "annotation 9 has 'choices' {\"alarm\": true}"),
    ("alarm", "annotation 9 has no 'value'"),
])
def test_label_studio_choices_of_the_wrong_type_are_refused_with_the_task(tmp_path, value, message):
    (tmp_path / "export.json").write_text(json.dumps([choices_task({"choices": ["alarm"]}), choices_task(value)]))
    with pytest.raises(DataError) as err:
        read_items(tmp_path / "export.json")
    assert str(err.value).startswith(f"{tmp_path / 'export.json'}: task 2: {message}")


def test_label_studio_annotations_and_cancellations_of_the_wrong_type(tmp_path):
    for tasks, message in (([{"data": {"text": "a"}, "annotations": "none"}], "its 'annotations' is not a list"),
                           ([{"data": {"text": "a"}, "annotations": {}}], "its 'annotations' is not a list"),
                           ([task("a", annotation("x") | {"was_cancelled": "no"})], "'was_cancelled' is not true")):
        (tmp_path / "export.json").write_text(json.dumps(tasks))
        with pytest.raises(DataError, match=rf"export.json: task 1: .*{message}"):
            read_items(tmp_path / "export.json")
    (tmp_path / "export.json").write_text(json.dumps([{"data": {"text": "a"}, "annotations": None}]))
    assert read_items(tmp_path / "export.json")[0].label is None  # null: not annotated


def test_a_label_studio_export_naming_a_key_twice_or_with_a_lone_surrogate_names_the_line(tmp_path):
    (tmp_path / "export.json").write_text('[\n {"data": {"text": "a"}},\n {"data": {"text": "b", "text": "c"}}\n]')
    with pytest.raises(DataError, match=r"export.json:3: the key 'text' appears twice in one object"):
        read_items(tmp_path / "export.json")
    (tmp_path / "export.json").write_text('[\n {"data": {"text": "a"}},\n {"data": {"text": "b \\udc00"}}\n]')
    with pytest.raises(DataError, match=r"export.json:3: a lone surrogate"):
        read_items(tmp_path / "export.json")
    (tmp_path / "export.json").write_text('[\n {"data": {"text": "a", "lead_time": NaN}}\n]')
    with pytest.raises(DataError, match=r"export.json:2: NaN is not a number JSON allows"):
        read_items(tmp_path / "export.json")


def test_parquet_integers_past_int64_are_read(tmp_path):
    big = [2**63, 2**64 - 1]
    pq.write_table(pa.table({"text": ["a", "b"], "label": pa.array(big, pa.uint64()),
                             "id": pa.array(big, pa.uint64())}), tmp_path / "t.parquet")
    assert [(i.text, i.label) for i in read_items(tmp_path / "t.parquet")] == [("a", str(2**63)), ("b", str(2**64 - 1))]
    assert main(["export", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "t.jsonl")]) == 0
    assert [json.loads(line)["id"] for line in (tmp_path / "t.jsonl").read_text().splitlines()] == big


def test_parquet_values_that_are_not_labels_or_not_python_are_named_by_row(tmp_path):
    pq.write_table(pa.table({"text": ["a", "b"], "label": [1.5, float("nan")]}), tmp_path / "nan.parquet")
    with pytest.raises(DataError, match=r"nan.parquet: row 2: the label field 'label' is nan, not a label"):
        read_items(tmp_path / "nan.parquet")
    far = pa.array([0, 0, 300_000_000_000_000], type=pa.timestamp("s"))  # past year 9999
    pq.write_table(pa.table({"text": ["a", "b", "c"], "seen": far}), tmp_path / "far.parquet")
    with pytest.raises(DataError, match=r"far.parquet: row 3: a value Python cannot hold"):
        read_items(tmp_path / "far.parquet")


def test_a_parquet_file_naming_a_column_twice_or_damaged_is_one_error(tmp_path):
    pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]),
                   tmp_path / "twice.parquet")
    with pytest.raises(DataError, match=r"twice.parquet: the column 'text' appears twice"):
        read_items(tmp_path / "twice.parquet")
    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "t.parquet")
    raw = bytearray((tmp_path / "t.parquet").read_bytes())
    for at in range(len(raw) - 60, len(raw) - 8):  # the footer's metadata, a byte at a time
        damaged = bytearray(raw)
        damaged[at] ^= 0xFF
        (tmp_path / "d.parquet").write_bytes(bytes(damaged))
        try:
            read_items(tmp_path / "d.parquet")
        except DataError:
            pass
