"""Files for the tools labelling teams work in: Label Studio, Parquet and CSV.

- :func:`export` turns a labelled JSONL (``annotate``'s output) into Parquet, CSV, JSONL, or a
  Label Studio tasks file whose labels are predictions (pre-annotations) with the project's labelling
  config beside it, so that a team reviews cmalign's labels where it labels anyway.
- :func:`label_studio_items` reads a Label Studio JSON export back as items: the text from each
  task's ``data``, the label from its latest annotation that was not cancelled. :func:`iter_items
  <cmalign.data.io.iter_items>` reads a ``.json`` file holding a JSON array through it, so ``fit``
  learns from a reviewed project as it is exported.

The Label Studio shapes are the ones it imports and exports: a task is ``{"data": {...},
"predictions": [...], "annotations": [...]}``, and a prediction or annotation holds ``result``
regions ``{"from_name", "to_name", "type": "choices", "value": {"choices": [label]}}``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import quoteattr

from .data.io import TEXT_FIELDS, Item, _pick, _records, line_unit  # the readers' own checks
from .errors import DataError
from .files import write_atomically, writable_target
from .labels import LabelSet

FORMATS = ("parquet", "csv", "jsonl", "label-studio")
SUFFIX_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "label-studio"}
CONTROL = "label"  # the labelling config's <Choices name=...>, the from_name of every prediction
OBJECT = "text"  # its <Text name=...>, the to_name
CONFIG_SUFFIX = ".label-config.xml"
PREDICTED = ("label", "method", "confidence")  # the fields a Label Studio prediction holds
BATCH_ROWS = 10_000  # rows held at a time while writing Parquet: one row group each
Rows = Callable[[], Iterator[tuple[int, dict]]]  # reads the input afresh at each call: (line, record) pairs


@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: the number of items, the format and the files (the tasks file
    first, then the labelling config for ``label-studio``)."""

    items: int
    format: str
    paths: tuple[Path, ...]


# -- export -----------------------------------------------------------------------------------------

def export_format(target: str | Path, fmt: str | None = None) -> str:
    """``fmt`` when given, else the format ``target``'s suffix names (``.json``: Label Studio)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(target).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise DataError(f"cannot tell the format from the suffix {suffix or '(none)'!r}: name it with --format "
                        f"({', '.join(FORMATS)})", target)
    return SUFFIX_FORMATS[suffix]


def config_path(target: str | Path) -> Path:
    """Where the Label Studio labelling config of the tasks file ``target`` goes: beside it."""
    return Path(target).with_suffix(CONFIG_SUFFIX)


def export(source: str | Path, target: str | Path, *, fmt: str | None = None, labels: LabelSet | None = None,
           labels_source: str | Path | None = None, overwrite: bool = False) -> Exported:
    """Write the labelled items of ``source`` (a JSONL such as ``annotate`` writes; CSV and Parquet
    read too) to ``target`` in ``fmt`` (default: from ``target``'s suffix), atomically.

    Every field of every line is kept: as a column (Parquet, CSV; lists and objects as JSON text
    in CSV), as is (JSONL), or for Label Studio in the task's ``data``, except ``label``,
    ``method`` and ``confidence``, which become the prediction's choice, ``model_version``
    (``cmalign <method>``) and ``score``. The Label Studio config lists ``labels`` when given (every
    label must be in it and is written as there), else the labels of the file in order of first
    appearance. A file already at ``target`` (or at the config's path) is replaced only with
    ``overwrite``. The input is streamed: Parquet and CSV read it twice (once for the columns and
    their types), and nothing holds more than a row group.
    """
    source, target = Path(source), Path(target)
    fmt = export_format(target, fmt)
    paths = (target, config_path(target)) if fmt == "label-studio" else (target,)
    for path in paths:
        _check_target(path, source, overwrite)
    count = [0]

    def rows() -> Iterator[tuple[int, dict]]:  # a Rows
        """The input's (line, record) pairs, each with a text, read afresh at each call; an error
        (a line without a text, an empty file) stops the write and leaves no file."""
        count[0] = 0
        for number, record in _records(source):
            _text_field(record, source, number)
            count[0] += 1
            yield number, record
        if not count[0]:
            raise DataError("the file holds no items", source)

    if fmt == "label-studio":
        tasks = _TasksWriter(source, labels, labels_source)
        write_atomically(target, lambda handle: tasks.write(rows, handle))
        config = label_config(list(labels.labels) if labels is not None else list(tasks.seen), tasks.text_key)
        write_atomically(paths[1], lambda handle: handle.write(config.encode("utf-8")))
    else:
        writer = {"parquet": _write_parquet, "csv": _write_csv, "jsonl": _write_jsonl}[fmt]
        write_atomically(target, lambda handle: writer(rows, handle, source))
    return Exported(count[0], fmt, paths)


def _check_target(path: Path, source: Path, overwrite: bool) -> None:
    real = writable_target(path)
    if real == Path(os.path.realpath(source)):
        raise DataError("is the input file itself; write the export to another file", path)
    if real.exists() and not overwrite:
        raise DataError("exists already: --overwrite to replace it", path)


def _text_field(record: dict, source: Path, number: int) -> str:
    """The key of the record's text (``text``, else ``input``), checked as ``iter_items`` checks it."""
    key = _pick(record, None, TEXT_FIELDS)
    if key is None:
        raise DataError(f"no text field {' or '.join(TEXT_FIELDS)!r}; the fields are {sorted(record)}", source, number,
                        unit=line_unit(source))
    text = record[key]
    if not isinstance(text, str) or not text.strip():
        what = ("missing" if text is None else "empty" if isinstance(text, str)
                else f"a {type(text).__name__}, not a string")
        raise DataError(f"the text field {key!r} is {what}", source, number, unit=line_unit(source))
    return key


def _json(value: Any) -> str:
    """JSON text; what JSON has no type for (a Parquet input's dates, decimals) is written as text."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _write_jsonl(rows: Rows, handle: BinaryIO, source: Path) -> None:
    for _, record in rows():
        handle.write((_json(record) + "\n").encode("utf-8"))


def _write_csv(rows: Rows, handle: BinaryIO, source: Path) -> None:
    """Columns in order of first appearance (a field a line lacks is an empty cell); strings as
    they are, anything else as JSON (a list of candidates reads back with ``json.loads``)."""
    columns: dict[str, None] = {}
    for _, record in rows():
        columns |= dict.fromkeys(record)
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns), restval="")
    writer.writeheader()
    for _, record in rows():
        writer.writerow({key: "" if value is None else value if isinstance(value, str)
                         else _json(value) for key, value in record.items()})
    text.flush()
    text.detach()  # the handle stays open for write_atomically to sync


def _kind(value: Any) -> str | None:
    """The JSON kind of a value, the unit of a Parquet column's type (None for null, which fits any)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _pyarrow(doing: str):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{doing} .parquet needs pyarrow: pip install 'cmalign[parquet]'") from None
    return pa, pq


def _batches(rows: Rows) -> Iterator[list[tuple[int, dict]]]:
    batch = []
    for row in rows():
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_parquet(rows: Rows, handle: BinaryIO, source: Path) -> None:
    """One row group per batch of rows, with the schema of the whole file: a first pass finds each
    field's type (a field that is a number on one line and a string on another is an error naming
    both lines; integers and fractions together are fractions), the second writes."""
    pa, pq = _pyarrow("writing")
    kinds: dict[str, tuple[str, int]] = {}
    schema = None
    try:
        for batch in _batches(rows):
            for number, record in batch:
                for key, value in record.items():
                    kind = _kind(value)
                    if kind is None:
                        continue
                    earlier = kinds.setdefault(key, (kind, number))
                    if earlier[0] != kind:
                        unit = line_unit(source)
                        raise DataError(f"the field {key!r} is a {kind} here but a {earlier[0]} on {unit or 'line'} "
                                        f"{earlier[1]}; a Parquet column holds one type", source, number, unit=unit)
            keys = dict.fromkeys(key for _, record in batch for key in record)  # from_pylist sees the first row's
            found = pa.schema([(key, pa.array([record.get(key) for _, record in batch]).type) for key in keys])
            schema = found if schema is None else pa.unify_schemas([schema, found], promote_options="permissive")
        writer = pq.ParquetWriter(handle, schema)
        try:
            for batch in _batches(rows):
                writer.write_table(pa.Table.from_pylist([record for _, record in batch], schema=schema))
        finally:
            writer.close()
    except pa.ArrowException as exc:
        raise DataError(f"cannot be written as Parquet ({exc})", source) from None


class _TasksWriter:
    """Writes a Label Studio tasks file (one JSON array) a task at a time, and keeps what its
    labelling config needs: the labels met, in order, and the field the texts are in."""

    def __init__(self, source: Path, labels: LabelSet | None, labels_source: str | Path | None) -> None:
        self.source, self.labels, self.labels_source = source, labels, labels_source
        self.seen: dict[str, None] = {}
        self.text_key = OBJECT

    def write(self, rows: Rows, handle: BinaryIO) -> None:
        handle.write(b"[")
        count = 0
        for number, record in rows():
            if count == 0:  # the config shows the first line's text field; annotate's is "text"
                self.text_key = _pick(record, None, TEXT_FIELDS)
            label = self._label(record, number)
            if label is not None:
                self.seen.setdefault(label)
            handle.write(b",\n" if count else b"\n")
            handle.write(_json(_task(record, number, label)).encode("utf-8"))
            count += 1
        handle.write(b"\n]\n")

    def _label(self, record: dict, number: int) -> str | None:
        """The line's label as a choice: a string (a number is written as one), in the label set
        when there is one and as it is written there; None for a line without a label."""
        label = record.get("label")
        if isinstance(label, (int, float)) and not isinstance(label, bool):
            label = str(label)
        if label is not None and not isinstance(label, str):
            raise DataError(f"the label field 'label' is a {type(label).__name__}", self.source, number,
                            unit=line_unit(self.source))
        if label is None or not label.strip():
            return None
        if self.labels is None:
            return label
        canonical = self.labels.canonical(label)
        if canonical is None:
            source = f" from {self.labels_source}" if self.labels_source else ""
            raise DataError(f"label {label!r} is not in the label set{source} ({len(self.labels)} labels)",
                            self.source, number, unit=line_unit(self.source))
        return canonical


def _task(record: dict, number: int, label: str | None) -> dict:
    """A Label Studio task: the line's fields as ``data`` (with its ``line``, the input line
    number, when it had none), and its label as a prediction, which Label Studio shows
    pre-selected and a reviewer accepts or changes."""
    data = {key: value for key, value in record.items() if key not in PREDICTED}
    data.setdefault("line", number)
    task: dict[str, Any] = {"data": data}
    if label is None:
        data |= {key: record[key] for key in PREDICTED if key in record}  # nothing predicted: all kept in data
        return task
    method, confidence = record.get("method"), record.get("confidence")
    prediction: dict[str, Any] = {"model_version": "cmalign" if method is None else f"cmalign {method}"}
    if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
        prediction["score"] = confidence
    elif confidence is not None:
        data["confidence"] = confidence  # not a score Label Studio can sort by: kept as it is
    prediction["result"] = [{"from_name": CONTROL, "to_name": OBJECT, "type": "choices",
                             "value": {"choices": [label]}}]
    task["predictions"] = [prediction]
    return task


def label_config(labels: list[str], text_key: str = OBJECT) -> str:
    """The labelling config of a project for these tasks: the text, and one choice per label."""
    choices = "".join(f"    <Choice value={quoteattr(label)}/>\n" for label in labels)
    return (f"<View>\n  <Text name={quoteattr(OBJECT)} value={quoteattr('$' + text_key)}/>\n"
            f"  <Choices name={quoteattr(CONTROL)} toName={quoteattr(OBJECT)} choice=\"single\">\n"
            f"{choices}  </Choices>\n</View>\n")


# -- reading a Label Studio export ------------------------------------------------------------------

def label_studio_items(path: str | Path, *, text_field: str | None = None, label_field: str | None = None,
                       require_labels: bool = False, allow_empty: bool = False) -> Iterator[Item]:
    """The tasks of a Label Studio JSON export as items; an item's ``line`` is its task's place in
    the file (1-based), and errors name it (``FILE: task 3: ...``).

    The text is ``data[text_field]`` (default: ``text``, else ``input``). The label is the choice
    of the task's latest annotation that was not cancelled: latest by ``updated_at`` (else
    ``created_at``) when every such annotation has one, else the last in the list. Predictions are
    not labels and are ignored. ``label_field`` names the ``Choices`` control (its ``from_name``)
    when the annotations answer several. A task without an annotation has no label: an error with
    ``require_labels`` (:func:`~cmalign.data.io.read_preferences` leaves such tasks out instead).
    The file is one JSON array, so it is read whole.
    """
    path = Path(path)
    tasks = _load_tasks(path)
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError("expected a Label Studio task, an object with 'data' (export the project as JSON, "
                            "not JSON-MIN)", path, number, unit="task")
        data = task["data"]
        key = _pick(data, text_field, TEXT_FIELDS)
        if key is None:
            raise DataError(f"its data has no text field {text_field or ' or '.join(TEXT_FIELDS)!r}; the fields are "
                            f"{sorted(data)}", path, number, unit="task")
        text = data[key]
        if not isinstance(text, str) or not text.strip():
            what = ("null" if text is None else "empty" if isinstance(text, str)
                    else f"a {type(text).__name__}, not a string")
            raise DataError(f"the text field {key!r} is {what}", path, number, unit="task")
        label = _annotated_label(task, label_field, path, number)
        if require_labels and label is None:
            raise DataError("has no annotation (none, or all cancelled)", path, number, unit="task")
        yield Item(text=text, label=label, line=number)
    if not tasks and not allow_empty:
        raise DataError("the file holds no items", path)


def _load_tasks(path: Path) -> list:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a file", path) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", path) from None
    try:
        tasks = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason}); save the file as UTF-8", path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg} at character {exc.colno})", path, exc.lineno) from None
    if not isinstance(tasks, list):
        raise DataError("expected a JSON array of Label Studio tasks", path)
    return tasks


def _annotated_label(task: dict, label_field: str | None, path: Path, number: int) -> str | None:
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DataError("its 'annotations' is not a list of objects", path, number, unit="task")
    standing = [a for a in annotations if not a.get("was_cancelled")]
    if not standing:
        return None
    return _choice(_latest(standing), label_field, path, number)


def _time(annotation: dict) -> datetime | None:
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _latest(annotations: list[dict]) -> dict:
    """The latest annotation by its time stamps when all have one (ties: the later in the list),
    else the last in the list, the order Label Studio lists them in."""
    times = [_time(a) for a in annotations]
    if None in times:
        return annotations[-1]
    return max(zip(times, range(len(times)), annotations), key=lambda t: t[:2])[2]


def _choice(annotation: dict, label_field: str | None, path: Path, number: int) -> str:
    """The one choice an annotation made in the ``Choices`` control (``label_field``, else the only one)."""
    name = f"annotation {annotation['id']}" if "id" in annotation else "the annotation"
    result = annotation.get("result")
    if not isinstance(result, list):
        raise DataError(f"{name} has no 'result' list", path, number, unit="task")
    regions = [r for r in result if isinstance(r, dict) and r.get("type") == "choices"
               and (label_field is None or r.get("from_name") == label_field)]
    controls = list(dict.fromkeys(str(r.get("from_name")) for r in regions))
    if len(controls) > 1:
        raise DataError(f"{name} answers several Choices controls ({', '.join(controls)}); name the one that "
                        "holds the label with --label-field", path, number, unit="task")
    values = [r.get("value") for r in regions]
    choices = [c for value in values if isinstance(value, dict) for c in (value.get("choices") or [])]
    where = f" in {label_field!r}" if label_field else ""
    if not choices:
        raise DataError(f"{name} has no choice{where}", path, number, unit="task")
    if len(choices) > 1:
        raise DataError(f"{name} has several choices{where} ({', '.join(map(str, choices))}); cmalign learns one "
                        "label a text", path, number, unit="task")
    if not isinstance(choices[0], str) or not choices[0].strip():
        raise DataError(f"{name} has the choice {choices[0]!r}, not a label", path, number, unit="task")
    return choices[0]
