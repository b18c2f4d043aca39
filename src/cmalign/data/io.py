"""Readers for labelled and unlabelled items (JSONL, CSV, Parquet, Label Studio exports) and for
label-set files.

Every problem is reported as a :class:`~cmalign.errors.DataError` naming the file and the line
(1-based, as an editor shows it; for Parquet the row, for a Label Studio export the task) or the
column. :func:`iter_items` reads a file one item at a time (``annotate`` streams its input through
it, with a checking pass first so that a bad line costs nothing); :func:`read_items` returns them
all. A Label Studio export is read by :mod:`cmalign.data.label_studio`.
"""

from __future__ import annotations

import csv
import gzip
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DataError
from ..labels import LabelSet
from ..labels import normalize
from .cells import plain_cell
from .fields import (LABEL_FIELDS, TEXT_FIELDS, Item, checked_text, decode_json, may_hold_surrogate, member_offsets,
                     pick, quick_decoder)
from .label_studio import label_studio_items

GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)  # what reading a damaged .gz raises
CSV_FIELD_LIMIT = csv.field_size_limit()  # 131,072 characters: the csv module's, process-wide, left as it is

def _lines(path: Path, where: list[int]) -> Iterator[str]:
    """The file's lines as text, decoded one at a time so that a byte that is not UTF-8 is reported
    with its line; ``where[0]`` is the number of the line last read. A byte-order mark (Excel writes
    one) is dropped, not read as part of the first field's name."""
    compressed = path.suffix.lower() == ".gz"
    with (gzip.open if compressed else open)(path, "rb") as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                where[0] = number
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"not UTF-8 text ({exc.reason}); save the file as UTF-8", path, number) from None
                yield text.removeprefix("\ufeff") if number == 1 else text
        except GZIP_ERRORS as exc:
            if not compressed:
                raise
            raise _damaged(exc, path, where[0]) from None


def _damaged(exc: Exception, path: Path, read: int = 0) -> DataError:
    """A .gz file that does not decompress; ``read`` lines came out first. Its line is not named:
    the damage is somewhere past them, where the decompressor had read ahead to."""
    after = f" after line {read}" if read else ""
    return DataError(f"damaged or not gzip data{after} ({exc or type(exc).__name__})", path)


PARQUET_BATCH_ROWS = 4096  # rows decoded at a time: memory stays flat however long the file


def _format_of(path: Path) -> str:
    """``jsonl``, ``csv``, ``tsv``, ``parquet`` or ``label-studio``. A ``.json`` file is a Label
    Studio export when it holds a JSON array (its first character is ``[``), else JSONL: a JSONL
    line is an object and never starts with ``[``."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last == ".json":
        return "label-studio" if _first_character(path) == "[" else "jsonl"
    if last in (".jsonl", ".ndjson"):
        return "jsonl"
    if last in (".csv", ".tsv", ".parquet"):
        return last[1:]
    raise DataError(f"unknown file type {last or '(none)'!r}: expected .jsonl, .csv, .tsv, .parquet "
                    "or a Label Studio .json export", path)


def _first_character(path: Path) -> str:
    """The first character of a text file that is not white space or a byte-order mark ('' if
    none, or if the file cannot be read: reading it says why, with the reader's message)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(4096):
                if stripped := chunk.lstrip(b" \t\r\n\xef\xbb\xbf"):
                    return chr(stripped[0])
    except (OSError, *GZIP_ERRORS):
        pass
    return ""


def line_unit(path: str | Path) -> str | None:
    """What an item's ``line`` counts in ``path``: ``row`` (the data rows of a CSV, TSV or Parquet
    file: a header is not a row), ``task`` (Label Studio) or None (a JSONL file's lines), for
    :class:`DataError`."""
    try:
        return {"parquet": "row", "csv": "row", "tsv": "row", "label-studio": "task"}.get(_format_of(Path(path)))
    except DataError:
        return None


def _parquet_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(row number, record) pairs of a Parquet file, decoded a batch of rows at a time."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading .parquet needs pyarrow: pip install 'cmalign[parquet]'") from None
    import pyarrow as pa

    try:
        number = 0
        with pq.ParquetFile(path) as parquet:  # closed when done: annotate reads its input twice
            names = parquet.schema_arrow.names
            if len(set(names)) != len(names):
                twice = next(name for name in names if names.count(name) > 1)
                raise DataError(f"the column {twice!r} appears twice (which one is meant?)", path)
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for record in _python_rows(batch, path, number):
                    number += 1
                    yield number, record
    except (pa.ArrowException, OSError, ValueError, TypeError, LookupError, ArithmeticError) as exc:
        # a damaged file's metadata fails inside pyarrow in many ways (an OSError, a name that is not UTF-8, ...)
        raise DataError(f"not a readable Parquet file ({exc or type(exc).__name__})", path) from None


def _python_rows(batch, path: Path, before: int) -> list[dict]:
    """A batch's rows as Python values; a value Python cannot hold (a date past year 9999, a
    string that is not UTF-8) is an error naming its row, found by converting the rows one by one."""
    try:
        return batch.to_pylist()
    except (ValueError, OverflowError, ArithmeticError):
        pass
    for offset in range(batch.num_rows):
        try:
            batch.slice(offset, 1).to_pylist()
        except UnicodeDecodeError as exc:
            raise DataError(f"a string that is not UTF-8 ({exc.reason})", path, before + offset + 1,
                            unit="row") from None
        except (ValueError, OverflowError, ArithmeticError) as exc:
            raise DataError(f"a value Python cannot hold ({exc})", path, before + offset + 1, unit="row") from None
    raise DataError("a batch of rows that cannot be read as Python values", path)


def records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) pairs; the record's keys are the file's field or column names.
    For Parquet the number is the row's (1-based); Label Studio exports are not read here."""
    fmt = _format_of(path)
    if fmt == "label-studio":
        raise DataError("is a Label Studio export (one JSON array of tasks), not a record a line", path)
    where = [0]
    try:
        if fmt == "parquet":
            yield from _parquet_records(path)
            return
        lines = _lines(path, where)
        if fmt == "jsonl":
            yield from _json_objects(lines, path, where)
        else:
            yield from _csv_records(lines, fmt, path)
    except (OSError, EOFError) as exc:
        raise _unreadable(exc, path) from None


def _csv_records(lines: Iterator[str], fmt: str, path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a CSV or TSV file. A cell longer than :data:`CSV_FIELD_LIMIT` is
    refused with its line: the limit is the csv module's, a setting of the whole process, which a
    library does not change under its caller (a longer text reads from JSONL or Parquet)."""
    reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",")
    header: list[str] | None = None
    rows = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem = f"not readable as {fmt.upper()} ({exc})"
            if "field larger than field limit" in str(exc):
                problem = (f"a cell longer than {CSV_FIELD_LIMIT:,} characters, the csv module's limit: a quote "
                           "left open? (a longer text reads from JSONL or Parquet)")
            raise DataError(problem, path, reader.line_num) from None
        row = [plain_cell(cell) for cell in row]  # a cell written safe for spreadsheets reads as it was
        if header is None:
            header = row
            twice = next((name for name in header if header.count(name) > 1), None)
            if twice is not None:
                raise DataError(f"the column {twice!r} appears twice in the header (which one is meant?)",
                                path, reader.line_num)
            continue
        if not row:
            continue  # a blank line, as csv.DictReader skips it
        if len(row) > len(header):
            raise DataError("more cells than the header has columns", path, reader.line_num)
        rows += 1  # an item's number is its data row (the header is not one); errors here name the editor's line
        yield rows, dict(zip(header, row + [None] * (len(header) - len(row))))


def json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file whatever its suffix (an
    ``annotate`` output, a review), one at a time; a bad line is a DataError naming it."""
    path, where = Path(path), [0]
    try:
        yield from _json_objects(_lines(path, where), path, where)
    except (OSError, EOFError) as exc:
        raise _unreadable(exc, path) from None


def _json_objects(lines: Iterator[str], path: Path, where: list[int]) -> Iterator[tuple[int, dict]]:
    decode = quick_decoder()  # the common case without a call of decode_json a line: lines come by the million
    for raw in lines:
        if not raw.strip():
            continue
        try:
            record = decode(raw)
        except (ValueError, RecursionError):
            record = decode_json(raw, path, where[0])  # raises the error naming the line
        if may_hold_surrogate(raw):
            record = decode_json(raw, path, where[0])
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", path, where[0])
        yield where[0], record


def _unreadable(exc: Exception, path: Path) -> DataError:
    if isinstance(exc, FileNotFoundError):
        return DataError("no such file", path)
    if isinstance(exc, IsADirectoryError):
        return DataError("is a folder, not a file", path)
    return DataError(f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", path)


def iter_items(path: str | Path, *, text_field: str | None = None, label_field: str | None = None,
               require_labels: bool = False, allow_empty: bool = False) -> Iterator[Item]:
    """The items of a JSONL or CSV/TSV file (optionally gzipped), a Parquet file or a Label Studio
    JSON export, one at a time: memory does not grow with the file (except for a Label Studio
    export, one JSON array read whole).

    ``text_field`` and ``label_field`` name the key or column; by default the text is the first
    of ``text``/``input`` and the label is ``label``. With ``require_labels`` every item must have
    a label; otherwise a label is read where the field is present. A file with no item is an
    error (once the end is reached) unless ``allow_empty``. An item's ``line`` is the row of a
    Parquet file and the task of a Label Studio export (1-based); for the latter ``label_field``
    names the ``Choices`` control (see :func:`cmalign.data.label_studio.label_studio_items`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> tickets = pathlib.Path(tempfile.mkdtemp()) / "tickets.csv"
    >>> _ = tickets.write_text("id,body,team\\n7,card never came,cards\\n8,app crashes,mobile\\n")
    >>> for item in iter_items(tickets, text_field="body", label_field="team"):
    ...     print(item.line, item.text, item.label, item.fields)
    1 card never came cards {'id': '7', 'team': 'cards'}
    2 app crashes mobile {'id': '8', 'team': 'mobile'}
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt == "label-studio":
        yield from label_studio_items(path, text_field=text_field, label_field=label_field,
                                      require_labels=require_labels, allow_empty=allow_empty)
        return
    unit = line_unit(path)
    by_line = fmt == "jsonl"  # a missing field is a line's; a missing column (CSV, Parquet) the file's
    text_key = label_key = None
    columns_checked = False
    for number, record in records(path):
        if not columns_checked:
            text_key = pick(record, text_field, TEXT_FIELDS)
            if text_key is None:
                wanted = text_field or " or ".join(TEXT_FIELDS)
                raise DataError(f"no text field {wanted!r}; the fields are {sorted(record)}",
                                path, number if by_line else None, column=None if by_line else wanted)
            label_key = pick(record, label_field, LABEL_FIELDS)
            if require_labels and label_key is None:
                wanted = label_field or LABEL_FIELDS[0]
                raise DataError(f"no label field {wanted!r}; the fields are {sorted(record)}",
                                path, number if by_line else None, column=None if by_line else wanted)
            columns_checked = True
        text = checked_text(record.get(text_key), text_key, path, number, unit)
        label = record.get(label_key) if label_key is not None else None
        if label is not None and not isinstance(label, str):
            if isinstance(label, float) and not math.isfinite(label):  # a Parquet float column's NaN
                raise DataError(f"the label field {label_key!r} is {label}, not a label", path, number, unit=unit)
            if isinstance(label, (int, float)) and not isinstance(label, bool):
                label = str(label)
            else:
                raise DataError(f"the label field {label_key!r} is a {type(label).__name__}",
                                path, number, unit=unit)
        if label is not None and not label.strip():
            label = None
        if require_labels and label is None:
            raise DataError(f"the label field {label_key!r} is missing or empty", path, number, unit=unit)
        yield Item(text=text, label=label, line=number,
                   fields={key: value for key, value in record.items() if key != text_key})
    if not columns_checked and not allow_empty:
        raise DataError("the file holds no items", path)


def read_items(path: str | Path, *, text_field: str | None = None, label_field: str | None = None,
               require_labels: bool = False, allow_empty: bool = False) -> list[Item]:
    """All the items of a file (see :func:`iter_items`), read before any work starts.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> tickets = pathlib.Path(tempfile.mkdtemp()) / "tickets.jsonl"
    >>> _ = tickets.write_text('{"text": "card never came", "label": "cards"}\\n{"text": "app crashes"}\\n')
    >>> [(item.text, item.label) for item in read_items(tickets)]
    [('card never came', 'cards'), ('app crashes', None)]
    >>> read_items(tickets, require_labels=True)
    Traceback (most recent call last):
    ...
    cmalign.errors.DataError: ...tickets.jsonl:2: the label field 'label' is missing or empty
    """
    return list(iter_items(path, text_field=text_field, label_field=label_field,
                           require_labels=require_labels, allow_empty=allow_empty))


@dataclass(frozen=True)
class ItemFile:
    """An input file as a stream that can be read more than once: :meth:`count` reads it through
    (every line parsed and its label checked against ``labels``, nothing kept), so that a bad line
    is found before any work; iterating reads it again, one item at a time."""

    path: Path
    text_field: str | None = None
    label_field: str | None = None
    labels: LabelSet | None = None
    labels_source: str | None = None

    def __iter__(self) -> Iterator[Item]:
        items = iter_items(self.path, text_field=self.text_field, label_field=self.label_field)
        return items if self.labels is None else canonical_labels(items, self.labels, self.path, self.labels_source)

    def count(self) -> int:
        return sum(1 for _ in self)


def read_labelset(path: str | Path) -> LabelSet:
    """Read a label set: one label a line (``label<TAB>description`` gives a description).

    Blank lines and lines starting with ``#`` are skipped. A ``.json`` file may instead hold a
    list of labels or an object mapping each label to its description (a string, or null for
    none). A problem is a :class:`DataError` naming the file and the line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a file", path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror})", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason}); save the file as UTF-8", path,
                        raw.count(b"\n", 0, exc.start) + 1) from None
    numbered = _json_labels(text, path) if path.suffix.lower() == ".json" else _text_labels(text)
    labels: list[str] = []
    descriptions: list[str] = []
    where: dict[str, int] = {}
    by_key: dict[str, tuple[str, int]] = {}
    for number, label, desc in numbered:
        if label in where:
            raise DataError(f"label {label!r} repeats line {where[label]}", path, number)
        key = normalize(label)
        if not key:
            raise DataError(f"label {label!r} is empty once normalised", path, number)
        if key in by_key:
            other, line = by_key[key]
            raise DataError(f"label {label!r} is the same as {other!r} (line {line}) once case, punctuation "
                            "and separators are ignored", path, number)
        where[label], by_key[key] = number, (label, number)
        labels.append(label)
        descriptions.append(desc)
    if not labels:
        raise DataError("the label file holds no labels", path)
    try:
        return LabelSet(tuple(labels), tuple(descriptions) if any(descriptions) else ())
    except DataError as exc:
        raise DataError(exc.problem, path) from None


def _text_labels(text: str) -> list[tuple[int, str, str]]:
    numbered = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        label, _, desc = raw.partition("\t")
        numbered.append((number, label.strip(), desc.strip()))
    return numbered


def _json_labels(text: str, path: Path) -> list[tuple[int, str, str]]:
    """(line, label, description) of a ``.json`` label file: a list of labels, or an object of
    label: description where a description is a string or null (none)."""
    data = decode_json(text, path)
    if not isinstance(data, (dict, list)):
        raise DataError("expected a list of labels or an object of label: description", path)
    lines = [text.count("\n", 0, at) + 1 for at in member_offsets(text)]
    if isinstance(data, list):
        numbered = []
        for line, label in zip(lines, data):
            if not isinstance(label, str):
                raise DataError(f"expected a label (a string), got {_json_type(label)}", path, line)
            numbered.append((line, label, ""))
        return numbered
    numbered = []
    for line, (label, desc) in zip(lines, data.items()):
        if desc is not None and not isinstance(desc, str):
            raise DataError(f"the description of {label!r} is {_json_type(desc)}: expected a string, or null "
                            "for none", path, line)
        numbered.append((line, label, (desc or "").strip()))
    return numbered


def _json_type(value: object) -> str:
    """How JSON names the kind of ``value``: a number, an object, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    kind = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return kind.get(type(value), type(value).__name__)


def check_labels(items: Iterable[Item], labels: LabelSet, path: str | Path,
                 labels_source: str | Path | None = None) -> list[Item]:
    """Return ``items`` with each label replaced by its canonical form; fail on the first unknown one."""
    return list(canonical_labels(items, labels, path, labels_source))


def canonical_labels(items: Iterable[Item], labels: LabelSet, path: str | Path,
                     labels_source: str | Path | None = None) -> Iterator[Item]:
    """:func:`check_labels` one item at a time."""
    for item in items:
        if item.label is None:
            yield item
            continue
        canonical = labels.canonical(item.label)
        if canonical is None:
            source = f" from {labels_source}" if labels_source else ""
            raise DataError(f"label {item.label!r} is not in the label set{source} "
                            f"({len(labels)} labels)", path, item.line, unit=line_unit(path))
        yield replace(item, label=canonical)


@dataclass(frozen=True)
class Preferences:
    """The user's labelled items and their label set; ``unannotated`` counts the tasks of a Label
    Studio export that nobody annotated, left out (always 0 for other files, where an item without
    a label is an error)."""

    items: list[Item]
    labels: LabelSet
    unannotated: int = 0


def read_preferences(path: str | Path, *, text_field: str | None = None, label_field: str | None = None,
                     labels_path: str | Path | None = None) -> Preferences:
    """The user's labelled items and their label set: from ``labels_path`` when given (every label
    must be in it, and is written as there), else the labels in the file in order of appearance.

    A Label Studio export is a project part of which is labelled: its tasks without an annotation
    are left out (and counted), and it is an error only when none has one."""
    path = Path(path)
    unannotated = 0
    if _format_of(path) == "label-studio":
        tasks = read_items(path, text_field=text_field, label_field=label_field)
        items = [item for item in tasks if item.label is not None]
        unannotated = len(tasks) - len(items)
        if not items:
            raise DataError(f"none of its {len(tasks)} tasks has an annotation (one not cancelled) to learn from",
                            path)
    else:
        items = read_items(path, text_field=text_field, label_field=label_field, require_labels=True)
    if labels_path is None:
        return Preferences(items, LabelSet.of(item.label for item in items), unannotated)
    label_set = read_labelset(labels_path)
    return Preferences(check_labels(items, label_set, path, labels_source=labels_path), label_set, unannotated)
