"""Property-based tests of every reader of the user's files: whatever a file holds, reading it gives
one CmalignError or a valid result, never another exception.

Each reader gets files that look nearly right (the right shape with wrong types, repeated keys,
NaN, lone surrogates, odd field names) and raw bytes. Derandomized, so CI sees the same examples
each run; bounded so the file runs in well under two minutes on one core.
"""

import csv
import datetime
import gzip
import io
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmalign import CmalignError, LabelSet, MemoryBank
from cmalign.annotators.base import Annotation
from cmalign.data import read_items, read_labelset, read_preferences
from cmalign.data.fields import Item
from cmalign.data.io import json_lines

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# any character, lone surrogates included (json.dumps writes them as \ud800 escapes)
characters = st.characters(exclude_categories=())
texts = st.text(characters, max_size=12) | st.sampled_from(["", " ", "a", "\ud800", "x\udfff", "\ud83d\ude00",
                                                             "=1+1", "None", "null", "\x00"])
names = st.sampled_from(["text", "input", "label", "data", "annotations", "id", "x"]) | texts
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2, max_value=2**80)
           | st.floats() | texts)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(names, inner, max_size=4), max_leaves=12)


def json_text(value) -> str:
    """JSON as Python writes it: NaN and Infinity bare, surrogates escaped."""
    return json.dumps(value)


@st.composite
def object_texts(draw, values=json_values):
    """A JSON object's text whose keys may repeat (a dict cannot hold that)."""
    pairs = draw(st.lists(st.tuples(names, values), max_size=5))
    return "{" + ", ".join(f"{json_text(k)}: {json_text(v)}" for k, v in pairs) + "}"


def deep(n: int) -> str:
    return "[" * n


def check_items(items) -> None:
    """What a reader's valid result promises."""
    for item in items:
        assert isinstance(item, Item)
        assert isinstance(item.text, str) and item.text.strip()
        item.text.encode("utf-8")  # no lone surrogate got through
        assert item.label is None or (isinstance(item.label, str) and item.label.strip())
        if item.label is not None:
            item.label.encode("utf-8")
        assert isinstance(item.line, int) and item.line >= 1


def read_all_ways(path) -> None:
    """Every reader of item files on ``path``: one CmalignError, or items that hold."""
    for call in (lambda: read_items(path), lambda: read_items(path, require_labels=True),
                 lambda: read_items(path, text_field="x", label_field="id", allow_empty=True)):
        try:
            check_items(call())
        except CmalignError:
            pass
    try:
        preferences = read_preferences(path)
    except CmalignError:
        pass
    else:
        check_items(preferences.items)
        assert all(item.label in preferences.labels for item in preferences.items)


# -- JSONL ---------------------------------------------------------------------------------------

jsonl_lines = (object_texts() | json_values.map(json_text) | st.just(deep(3000)) | st.just("")
               | st.text(characters, max_size=20))


@FUZZ
@given(lines=st.lists(jsonl_lines, max_size=5), compress=st.booleans())
def test_jsonl(tmp_path, lines, compress):
    body = "\n".join(lines).encode("utf-8", "surrogatepass")  # a raw surrogate byte is bad UTF-8 too
    path = tmp_path / ("f.jsonl.gz" if compress else "f.jsonl")
    path.write_bytes(gzip.compress(body) if compress else body)
    read_all_ways(path)
    try:
        for number, row in json_lines(path):
            assert isinstance(number, int) and isinstance(row, dict)
            json.dumps(row, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except CmalignError:
        pass


@FUZZ
@given(raw=st.binary(max_size=200), suffix=st.sampled_from(["f.jsonl", "f.jsonl.gz", "f.JSONL.GZ", "f.json",
                                                           "f.json.gz", "f.ndjson"]),
       cut=st.integers(min_value=0, max_value=200))
def test_jsonl_raw_bytes(tmp_path, raw, suffix, cut):
    path = tmp_path / suffix
    if suffix.lower().endswith(".gz") and cut % 2:  # gzip of the bytes, cut short or with a byte flipped
        packed = bytearray(gzip.compress(raw))
        packed = packed[:cut % len(packed)] if cut % 4 == 1 else packed
        if cut % 4 == 3:
            packed[cut % len(packed)] ^= 0x55
        raw = bytes(packed)
    path.write_bytes(raw)
    read_all_ways(path)


# -- CSV and TSV ---------------------------------------------------------------------------------

cells = texts | st.sampled_from(['"', '""', "a,b", "a\nb", "a\tb", "\r", "x" * 140_000])


@FUZZ
@given(rows=st.lists(st.lists(cells, max_size=4), max_size=5), delimiter=st.sampled_from([",", "\t"]),
       header=st.lists(names, min_size=0, max_size=4), quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_NONE]))
def test_csv_and_tsv(tmp_path, rows, delimiter, header, quoting):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, escapechar="\\", quotechar='"')
    try:
        writer.writerows([header, *rows])
    except csv.Error:
        return  # rows csv itself cannot write unquoted
    path = tmp_path / ("f.tsv" if delimiter == "\t" else "f.csv")
    path.write_bytes(out.getvalue().encode("utf-8", "surrogatepass"))
    read_all_ways(path)


@FUZZ
@given(raw=st.binary(max_size=300), suffix=st.sampled_from(["f.csv", "f.tsv", "f.csv.gz"]))
def test_csv_raw_bytes(tmp_path, raw, suffix):
    path = tmp_path / suffix
    path.write_bytes(raw)
    read_all_ways(path)


# -- Parquet -------------------------------------------------------------------------------------

def columns(n: int):
    """A Parquet column of ``n`` values of one of the types a Parquet file may hold."""
    strings = st.text(st.characters(exclude_categories=("Cs",)), max_size=8) | st.sampled_from(["", " "])
    kinds = [
        (pa.string(), strings | st.none()),
        (pa.int64(), st.integers(min_value=-2**63, max_value=2**63 - 1) | st.none()),
        (pa.uint64(), st.integers(min_value=2**63, max_value=2**64 - 1)),
        (pa.float64(), st.floats() | st.none()),
        (pa.bool_(), st.booleans() | st.none()),
        (pa.binary(), st.binary(max_size=6)),
        (pa.list_(pa.string()), st.lists(strings, max_size=2)),
        (pa.date32(), st.dates()),
        (pa.struct([("a", pa.int64())]), st.fixed_dictionaries({"a": st.integers(-5, 5)})),
    ]
    return st.sampled_from(kinds).flatmap(
        lambda kind: st.lists(kind[1], min_size=n, max_size=n).map(lambda values: pa.array(values, type=kind[0])))


@st.composite
def tables(draw):
    n = draw(st.integers(min_value=0, max_value=4))
    width = draw(st.integers(min_value=1, max_value=3))
    column_names = draw(st.lists(st.sampled_from(["text", "label", "input", "x"]), min_size=width, max_size=width))
    arrays = [draw(columns(n)) for _ in column_names]
    return pa.Table.from_arrays(arrays, names=column_names)  # names may repeat, as a Parquet file's can


@FUZZ
@given(table=tables(), damage=st.integers(min_value=0, max_value=3), at=st.integers(min_value=0, max_value=10**6))
def test_parquet(tmp_path, table, damage, at):
    path = tmp_path / "f.parquet"
    pq.write_table(table, path)
    if damage:  # cut short, or a byte flipped, or the magic number only
        raw = bytearray(path.read_bytes())
        if damage == 1:
            raw = raw[:at % len(raw)]
        elif damage == 2:
            raw[at % len(raw)] ^= 0xFF
        else:
            raw = bytearray(b"PAR1")
        path.write_bytes(bytes(raw))
    read_all_ways(path)


def test_parquet_with_a_time_python_cannot_hold(tmp_path):
    """A timestamp past year 9999 is a value pyarrow cannot give as a Python datetime."""
    far = pa.array([0, 300_000_000_000_000], type=pa.timestamp("s"))
    pq.write_table(pa.table({"text": ["a", "b"], "when": far}), tmp_path / "f.parquet")
    with pytest.raises(CmalignError, match=r"f.parquet: row 2: a value Python cannot hold"):
        read_items(tmp_path / "f.parquet")
    assert datetime.MAXYEAR == 9999


# -- Label Studio --------------------------------------------------------------------------------

regions = st.fixed_dictionaries(
    {"type": st.sampled_from(["choices", "labels"]) | json_values,
     "from_name": st.sampled_from(["label", "x"]) | json_values,
     "value": st.fixed_dictionaries({"choices": st.lists(texts, max_size=2) | json_values}) | json_values})
annotations = st.fixed_dictionaries(
    {"result": st.lists(regions, max_size=2) | json_values},
    optional={"was_cancelled": st.booleans() | json_values, "id": json_values,
              "created_at": st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-01", "not a date"]) | json_values,
              "updated_at": st.sampled_from(["2026-01-02T10:00:00+02:00"]) | json_values})
tasks = st.fixed_dictionaries(
    {"data": st.dictionaries(names, texts | json_values, max_size=3) | json_values},
    optional={"annotations": st.lists(annotations, max_size=3) | json_values, "predictions": json_values})


@FUZZ
@given(value=st.lists(tasks, max_size=4) | st.lists(json_values, max_size=3),
       duplicate=st.booleans())
def test_label_studio_export(tmp_path, value, duplicate):
    text = json_text(value)
    if duplicate and text.startswith('[{"data": '):  # the first task names its data twice
        text = text.replace('[{"data": ', '[{"data": {"text": "dup"}, "data": ', 1)
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    read_all_ways(path)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_label_studio_raw_bytes(tmp_path, raw):
    path = tmp_path / "export.json"
    path.write_bytes(b"[" + raw)  # a leading [ makes it read as a Label Studio export
    read_all_ways(path)


# -- memory bank ---------------------------------------------------------------------------------

LABELS = LabelSet.of(["alarm", "weather", "music"])


def valid_bank() -> dict:
    answers = [Annotation(raw=r, key=LABELS.resolve(r).key, label=LABELS.resolve(r).label)
               for r in ("alarm", "alarm", "rain", "music")]
    bank = MemoryBank.build(answers, ["alarm", "weather", "weather", "music"], LABELS, annotator="scripted",
                            budget="n=4", seed=1, texts=["wake me", "is it wet", "will it rain", "play jazz"])
    return bank.to_json()


def paths(value, prefix=()):
    """Every place in a decoded JSON value, as a tuple of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, prefix + (index,))


BANK_PLACES = list(paths(valid_bank()))[1:]


@st.composite
def tampered_banks(draw):
    bank = valid_bank()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        place = draw(st.sampled_from(BANK_PLACES))
        holder = bank
        try:
            for step in place[:-1]:
                holder = holder[step]
            if draw(st.booleans()) and isinstance(holder, dict):
                holder.pop(place[-1], None)
            else:
                holder[place[-1]] = draw(json_values | st.sampled_from([math.inf, math.nan, 0, -1, 10**30, True]))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed the place
    return bank


def check_bank(bank) -> None:
    assert isinstance(bank, MemoryBank)
    json.dumps(bank.to_json(), allow_nan=False, ensure_ascii=False).encode("utf-8")  # saves as it loaded
    assert bank.n_samples == sum(entry.total for entry in bank.entries.values())
    assert all(label in bank.labels for entry in bank.entries.values() for label in entry.candidates)


@FUZZ
@given(bank=tampered_banks(), duplicate=st.booleans())
def test_bank_file(tmp_path, bank, duplicate):
    text = json.dumps(bank, indent=1)
    if duplicate:
        text = text.replace('"annotator":', '"annotator": "other",\n "annotator":', 1)
    path = tmp_path / "bank.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        check_bank(MemoryBank.load(path))
    except CmalignError:
        pass


@FUZZ
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json_text(v).encode("utf-8", "surrogatepass")))
def test_bank_raw_bytes(tmp_path, raw):
    path = tmp_path / "bank.json"
    path.write_bytes(raw)
    try:
        check_bank(MemoryBank.load(path))
    except CmalignError:
        pass


# -- label-set files -----------------------------------------------------------------------------

def check_labelset(labels) -> None:
    assert isinstance(labels, LabelSet) and len(labels) >= 1
    for text in (*labels.labels, *labels.descriptions):
        assert isinstance(text, str)
        text.encode("utf-8")
    assert not labels.descriptions or len(labels.descriptions) == len(labels.labels)


@FUZZ
@given(value=json_values | st.dictionaries(texts, texts | json_values, max_size=4) | st.lists(texts, max_size=4)
       | object_texts(texts | st.none()))
def test_labelset_json(tmp_path, value):
    path = tmp_path / "labels.json"
    path.write_text(value if isinstance(value, str) and value.startswith("{") else json_text(value),
                    encoding="utf-8", errors="surrogatepass")
    try:
        check_labelset(read_labelset(path))
    except CmalignError:
        pass


@FUZZ
@given(lines=st.lists(st.tuples(texts, texts), max_size=5), raw=st.binary(max_size=100),
       suffix=st.sampled_from(["labels.txt", "labels.json", "labels"]))
def test_labelset_text_and_raw_bytes(tmp_path, lines, raw, suffix):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(f"{label}\t{desc}" if desc else label for label, desc in lines),
                    encoding="utf-8", errors="surrogatepass")
    try:
        check_labelset(read_labelset(path))
    except CmalignError:
        pass
    path = tmp_path / suffix
    path.write_bytes(raw)
    try:
        check_labelset(read_labelset(path))
    except CmalignError:
        pass


# -- a method's saved state (.npz beside the bank) -------------------------------------------------

@pytest.fixture(scope="module")
def saved_state(tmp_path_factory, annotator, encoder):
    """A bank with cm_stack's state beside it, fitted on 60 MASSIVE samples: (bank path, state bytes)."""
    from cmalign import Labeler
    from cmalign.data import load_bundled

    ds = load_bundled("massive_scenario")
    items = ds.small[:60]
    folder = tmp_path_factory.mktemp("state")
    Labeler(annotator, "cm_stack", encoder=encoder).fit([i.text for i in items], [i.label for i in items],
                                                       label_set=ds.labels).save(folder / "bank.json")
    return folder / "bank.json", (folder / "bank.cm_stack.npz").read_bytes()


@st.composite
def tampered_states(draw, valid: bytes):
    """The valid state's bytes cut or flipped, or its arrays and meta rewritten: dropped, reshaped,
    retyped, NaN, or the meta's values replaced by any JSON."""
    import numpy as np

    how = draw(st.sampled_from(["cut", "flip", "arrays", "meta"]))
    if how == "cut":
        return valid[:draw(st.integers(min_value=0, max_value=len(valid) - 1))]
    if how == "flip":
        at = draw(st.integers(min_value=0, max_value=len(valid) - 1))
        return valid[:at] + bytes([valid[at] ^ draw(st.integers(min_value=1, max_value=255))]) + valid[at + 1:]
    with np.load(io.BytesIO(valid)) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["__meta__"][()]))
    if how == "arrays":
        name = draw(st.sampled_from(sorted(n for n in arrays if n != "__meta__")))
        change = draw(st.sampled_from(["drop", "nan", "shape", "ints", "text", "empty"]))
        a = arrays[name]
        if change == "drop":
            del arrays[name]
        elif change == "nan" and a.size and a.dtype.kind == "f":
            a = a.copy()
            a.flat[draw(st.integers(min_value=0, max_value=a.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
            arrays[name] = a
        elif change == "shape":
            arrays[name] = a.reshape(-1)[: max(0, a.size - 1)]
        elif change == "ints":
            arrays[name] = a.astype(np.int64) if a.dtype.kind in "fb" else a
        elif change == "text":
            arrays[name] = np.array(["x"] * max(1, a.size))
        else:
            arrays[name] = np.zeros((0,) * max(1, a.ndim))
    else:
        keys = sorted(meta) or ["version"]
        key = draw(st.sampled_from(keys))
        meta[key] = draw(json_values)
        arrays["__meta__"] = np.array(json_text(meta))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_state_file(saved_state, annotator, encoder, data):
    """A damaged state is refitted (with its reason) or used whole; never another exception, never
    a probability that is not one. (Fewer examples than the other readers: each refit is a fit.)"""
    import numpy as np

    from cmalign import Labeler

    bank, valid = saved_state
    state = bank.with_name("bank.cm_stack.npz")
    state.write_bytes(data.draw(tampered_states(valid)))
    try:
        labeler = Labeler.load(bank, annotator, "cm_stack", encoder=encoder)
    except CmalignError:
        return
    probabilities = labeler.method_.predict_proba(["wake me up at seven", "play some jazz"])
    assert np.all(np.isfinite(probabilities)) and np.allclose(probabilities.sum(axis=1), 1)
