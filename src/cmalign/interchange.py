"""Files for the tools labelling teams work in: Label Studio, Parquet and CSV.

- :func:`export` turns a labelled JSONL (``annotate``'s output) into Parquet, CSV, JSONL, or a
  Label Studio tasks file whose labels are predictions (pre-annotations) with the project's labelling
  config beside it, so that a team reviews cmalign's labels where it labels anyway.
- :func:`cmalign.data.label_studio.label_studio_items` reads a Label Studio JSON export back as
  items, so ``fit`` learns from a reviewed project as it is exported.

The Label Studio shapes are the ones it imports and exports: a task is ``{"data": {...},
"predictions": [...], "annotations": [...]}``, and a prediction or annotation holds ``result``
regions ``{"from_name", "to_name", "type": "choices", "value": {"choices": [label]}}``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import quoteattr

from .chunks import batched
from .data.cells import safe_cell
from .data.fields import TEXT_FIELDS, checked_text, pick
from .data.io import line_unit, records
from .errors import DataError
from .files import check_outputs, is_stdio, write_atomically
from .labels import LabelSet

FORMATS = ("parquet", "csv", "tsv", "jsonl", "label-studio")
SUFFIX_FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                  ".json": "label-studio"}
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

    def lines(self) -> list[str]:
        return [f"exported {self.items} items as {self.format}", f"wrote {', '.join(str(p) for p in self.paths)}"]


# -- export -----------------------------------------------------------------------------------------

def export_format(target: str | Path, fmt: str | None = None) -> str:
    """``fmt`` when given, else the format ``target``'s suffix names (``.json``: Label Studio)."""
    if fmt is None and is_stdio(target):
        fmt = "jsonl"
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(target).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise DataError(f"cannot tell the format from the suffix {suffix or '(none)'!r}: name it with {{=format}} "
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
    ``overwrite``, and never when it is ``source`` itself. ``-`` is standard output (not for Label
    Studio, whose config is a second file). The input is streamed: Parquet and CSV read it twice
    (once for the columns and their types), and nothing holds more than a row group.
    """
    source = Path(source)
    fmt = export_format(target, fmt)
    if fmt == "label-studio" and is_stdio(target):
        raise DataError("a Label Studio export is two files (the tasks and their labelling config): write it to "
                        "a .json file", target)
    paths = (Path(target), config_path(target)) if fmt == "label-studio" else (Path(target),)
    check_outputs(paths, [source], overwrite=overwrite)
    count = [0]

    def rows() -> Iterator[tuple[int, dict]]:  # a Rows
        """The input's (line, record) pairs, each with a text, read afresh at each call; an error
        (a line without a text, an empty file) stops the write and leaves no file."""
        count[0] = 0
        for number, record in records(source):
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
        write_rows(target, rows, fmt, source)
    return Exported(count[0], fmt, paths)


def write_rows(target: str | Path, rows: Rows, fmt: str, source: str | Path) -> None:
    """Write ``rows`` (called afresh for each pass) to ``target`` as ``fmt`` (``jsonl``, ``csv``,
    ``tsv`` or ``parquet``), atomically; ``source`` is named in errors about a row."""
    writer = {"parquet": _write_parquet, "csv": _write_csv, "tsv": _write_tsv, "jsonl": _write_jsonl}[fmt]
    write_atomically(target, lambda handle: writer(rows, handle, Path(source)))


def _text_field(record: dict, source: Path, number: int) -> str:
    """The key of the record's text (``text``, else ``input``), checked as ``iter_items`` checks it."""
    key = pick(record, None, TEXT_FIELDS)
    if key is None:
        raise DataError(f"no text field {' or '.join(TEXT_FIELDS)!r}; the fields are {sorted(record)}", source, number,
                        unit=line_unit(source))
    checked_text(record[key], key, source, number, line_unit(source))
    return key


def _json(value: Any) -> str:
    """JSON text; what JSON has no type for (a Parquet input's dates, decimals) is written as text."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _write_jsonl(rows: Rows, handle: BinaryIO, source: Path) -> None:
    for _, record in rows():
        handle.write((_json(record) + "\n").encode("utf-8"))


def _write_tsv(rows: Rows, handle: BinaryIO, source: Path) -> None:
    _write_csv(rows, handle, source, delimiter="\t")


def _write_csv(rows: Rows, handle: BinaryIO, source: Path, delimiter: str = ",") -> None:
    """Columns in order of first appearance (a field a line lacks is an empty cell); strings as
    they are (made safe to open in a spreadsheet: :mod:`cmalign.data.cells`), anything else as
    JSON (a list of candidates reads back with ``json.loads``)."""
    columns: dict[str, None] = {}
    for _, record in rows():
        columns |= dict.fromkeys(record)
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    writer = csv.DictWriter(text, fieldnames=[safe_cell(c) for c in columns], restval="", delimiter=delimiter)
    writer.writeheader()
    for _, record in rows():
        writer.writerow({safe_cell(key): "" if value is None else safe_cell(value) if isinstance(value, str)
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


def _write_parquet(rows: Rows, handle: BinaryIO, source: Path) -> None:
    """One row group per batch of rows, with the schema of the whole file: a first pass finds each
    field's type (a field that is a number on one line and a string on another is an error naming
    both lines; integers and fractions together are fractions), the second writes."""
    pa, pq = _pyarrow("writing")
    kinds: dict[str, tuple[str, int]] = {}
    schema = None
    try:
        for batch in batched(rows(), BATCH_ROWS):
            for number, record in batch:
                for key, value in record.items():
                    kind = _kind(value)
                    if kind is None:
                        continue
                    if type(value) is int and not -2**63 <= value < 2**64:
                        raise DataError(f"the field {key!r} is {value}, a whole number no Parquet column holds (64 "
                                        "bits at most)", source, number, unit=line_unit(source))
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
            for batch in batched(rows(), BATCH_ROWS):
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
                self.text_key = pick(record, None, TEXT_FIELDS)
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
    prediction["result"] = [choice_region(label)]
    task["predictions"] = [prediction]
    return task


def choice_region(label: str, from_name: str = CONTROL, to_name: str = OBJECT) -> dict[str, Any]:
    """One result region of a task: the choice ``label`` in control ``from_name`` of object ``to_name``."""
    return {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}


def label_config(labels: list[str], text_key: str = OBJECT) -> str:
    """The labelling config of a project for these tasks: the text, and one choice per label."""
    choices = "".join(f"    <Choice value={quoteattr(label)}/>\n" for label in labels)
    return (f"<View>\n  <Text name={quoteattr(OBJECT)} value={quoteattr('$' + text_key)}/>\n"
            f"  <Choices name={quoteattr(CONTROL)} toName={quoteattr(OBJECT)} choice=\"single\">\n"
            f"{choices}  </Choices>\n</View>\n")
