"""The labelled output of ``annotate``: one record per item, a chunk at a time, never clobbered.

- The format follows the output's suffix: JSONL (``.jsonl``, ``.ndjson``), CSV, TSV or Parquet;
  ``-`` is JSONL on standard output. Each line holds ``line``, ``text``, the input's own fields
  (``fields``: all by default; a field whose name the output uses itself is written as
  ``input_<name>``) and the method's record.
- An existing output is refused unless the run says ``resume`` or ``overwrite``. With
  ``overwrite`` the old file stays as it was until the new one is complete.
- With ``resume``, every complete line is kept, a torn last line (a run killed mid-write) is cut
  off, the kept lines are checked against the input (same line numbers and texts) and against the
  record of the run that wrote them (same bank, annotator, method and learning sample), and
  labelling starts after them: no finished item is labelled again.
- JSONL is written in place, a chunk at a time. CSV, TSV and Parquet are written whole at the end:
  the lines go first into ``<output>.partial.jsonl``, which a resumed run continues, and are
  converted once every item is labelled.
- While a run writes, it holds a lock on ``<lines file>.cmalign-run``, the record of the run: a
  second writer to the same output is refused at once. The lock dies with the process, so a run
  killed with ``kill -9`` leaves nothing to clean up. Standard output has no record and no lock,
  so it cannot be resumed.
- Each chunk is flushed as soon as it is written. Neither writing nor resuming holds more than a
  line of the file in memory.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .data.fields import Item
from .errors import CmalignError, DataError
from .interchange import export
from .files import check_outputs, is_stdio, remove_stale_temporaries, writable_target
from .method.base import Record

RUN_SUFFIX = ".cmalign-run"
PARTIAL_SUFFIX = ".partial.jsonl"
COMPARED = ("bank", "annotator", "method", "adapt")  # what a resumed run must share with the one it continues;
# the input is checked line by line (numbers and texts), so a renamed input file still resumes
OWN_FIELDS = ("line", "text")


def output_format(path: str | Path) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``parquet``, from the suffix of ``path`` (``-``: JSONL)."""
    if is_stdio(path):
        return "jsonl"
    suffix = Path(path).suffix.lower()
    formats = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
    if suffix not in formats:
        raise DataError(f"unknown output type {suffix or '(none)'!r}: write .jsonl, .csv, .tsv or .parquet "
                        "(or - for JSONL on standard output)", path)
    return formats[suffix]


def carried(item: Item, record: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """The input's own fields of ``item`` to write beside ``record`` (``fields``: which; None: all)."""
    if not item.fields:
        return {}
    names = item.fields if fields is None else [name for name in fields if name in item.fields]
    return {(f"input_{name}" if name in record or name in OWN_FIELDS else name): item.fields[name]
            for name in names}


class LabelledOutput:
    """The output file of one ``annotate`` run. :meth:`claim` it before loading any model; once the
    run's identity is known, :meth:`start` it to learn how many items are done; then :meth:`write`
    each chunk and :meth:`finish` once all are written."""

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False,
                 fields: Sequence[str] | None = None) -> None:
        if resume and overwrite:
            raise DataError("{=resume} keeps what is there and {=overwrite} replaces it: give one of them", path)
        if resume and is_stdio(path):
            raise DataError("standard output keeps no record of the run, so it cannot be resumed: write to a file",
                            path)
        self.path, self.resume, self.overwrite, self.fields = Path(path), resume, overwrite, fields
        self.format = "jsonl"
        self._lock: int | None = None
        self._out = None
        self._finished = False

    @property
    def stdout(self) -> bool:
        return is_stdio(self.path)

    def claim(self, *inputs: str | Path | None) -> LabelledOutput:
        """Check the path and take the lock; fail now rather than after the model has loaded."""
        if self.stdout:
            return self
        real = writable_target(self.path)
        check_outputs([self.path], inputs, overwrite=True)  # an input is never written over, whatever its type
        self.format = output_format(self.path)
        lines = real if self.format == "jsonl" else real.with_name(real.name + PARTIAL_SUFFIX)
        record = lines.with_name(lines.name + RUN_SUFFIX)
        check_outputs([], inputs, sidecars=[record] + ([lines] if lines != real else []), overwrite=True)
        has_lines = lines.exists() and lines.stat().st_size > 0
        if not (self.resume or self.overwrite):
            for there in (real, lines):
                if there.exists() and there.stat().st_size > 0:
                    raise DataError("exists already: {=resume} to label only the items it lacks, {=overwrite} to "
                                    "replace it", self.path if there == real else there)
        if self.resume and lines != real and not has_lines and real.exists() and real.stat().st_size > 0:
            raise DataError(f"is complete (there is no {lines.name} of a run cut short to resume); {{=overwrite}} "
                            "to label everything again", self.path)
        self._created_record = not record.exists()
        try:
            self._lock = os.open(record, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise DataError(f"cannot write the run record {record.name} ({exc.strerror})", self.path) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise DataError("another cmalign annotate is writing this file now; wait for it to finish", self.path) \
                from None
        self._real, self._lines, self._record = real, lines, record
        self._earlier = os.read(self._lock, 1 << 20).decode("utf-8", "replace")
        return self

    def start(self, items: Iterator[Item], run: dict[str, Any]) -> int:
        """Record ``run`` (what determines the labels) and open the file; the number of items done.
        With ``resume``, the done items are taken from ``items`` (checked against the lines kept),
        so what is left in it is what to label."""
        if self.stdout:
            self._out = sys.stdout
            return 0
        done = 0
        self._writing = self._lines
        if self.resume and self._lines.exists() and self._lines.stat().st_size > 0:
            done = self._kept(items, run)
        elif self.overwrite and self._lines == self._real and self._real.exists():
            # the old output stays whole until the new one is: the lines go to a file beside it first
            remove_stale_temporaries(self._real)
            self._writing = self._real.with_name(f".{self._real.name}.{os.getpid()}.tmp")
            self._writing.write_bytes(b"")
        else:
            self._lines.write_bytes(b"")
        self._run = run
        if self._writing == self._lines:  # a replacement's record waits until it replaces the old output
            self._record_run()
        self._out = open(self._writing, "a", encoding="utf-8")
        return done

    def _record_run(self) -> None:
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, (json.dumps(self._run, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"), 0)
        os.fsync(self._lock)

    def _kept(self, items: Iterator[Item], run: dict[str, Any]) -> int:
        """Check the lines an earlier run left against ``items`` (taking one item per line), cut a
        torn last line off, and count them. Reads the file a line at a time."""
        try:
            earlier = json.loads(self._earlier) if self._earlier.strip() else None
        except json.JSONDecodeError:
            earlier = None
        if not isinstance(earlier, dict):
            raise DataError(f"there is no record of the run that wrote it ({self._record.name}); "
                            "{=overwrite} to label everything again", self.path)
        differs = [key for key in COMPARED if earlier.get(key) != run.get(key)]
        if differs:
            raise DataError(f"was written with another {differs[0]} ({earlier.get(differs[0])!r}, now "
                            f"{run[differs[0]]!r}); {{=overwrite}} to label everything again", self.path)
        good, done = 0, 0
        with open(self._lines, "rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # the torn end of a run that was killed mid-write
                try:
                    row = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise DataError("is not valid JSON before its last line; not resuming over a damaged "
                                    "file ({=overwrite} to start again)", self._lines, done + 1) from None
                item = next(items, None)
                if item is None or not isinstance(row, dict) or row.get("line") != item.line \
                        or row.get("text") != item.text:
                    raise DataError("does not match the input here (another input file?); {=overwrite} to "
                                    "start again", self._lines, done + 1)
                good += len(raw)
                done += 1
            torn = handle.tell() != good
        if torn:
            with open(self._lines, "r+b") as handle:
                handle.truncate(good)
        return done

    def write(self, items: Sequence[Item], records: Sequence[Record], method: str) -> None:
        try:
            for item, record in zip(items, records):
                fields = record.to_json(method)
                if not _finite(fields.get("confidence")):
                    raise DataError(f"the method gave item {item.line} the confidence {fields['confidence']!r}, "
                                    "not a probability; the lines written so far are kept", self.path)
                line = {"line": item.line, "text": item.text, **carried(item, fields, self.fields), **fields}
                self._out.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
            self._out.flush()
        except BrokenPipeError:
            raise  # the reader of standard output went away: not a disk problem
        except OSError as exc:
            raise DataError(f"cannot write ({exc.strerror}); the lines written so far are kept: "
                            "{=resume} once the problem is fixed", self.path) from None

    def finish(self) -> None:
        """Every item is written: put the output in place (a replaced one, or a converted format)."""
        if self.stdout:
            return
        self._out.close()
        if self._writing != self._lines:
            os.replace(self._writing, self._real)
            self._record_run()  # the old output's record stood until now, beside the old output
        elif self._lines != self._real:
            export(self._lines, self._real, fmt=self.format, overwrite=True)
            self._lines.unlink()
        self._finished = True

    def close(self) -> None:
        if self._out is not None and not self.stdout:
            try:
                self._out.close()
            except OSError:
                pass  # a full disk: write() has said so already
            if not self._finished and self._writing != self._lines:
                self._writing.unlink(missing_ok=True)  # a replacement cut short: the old output stays
        elif self._lock is not None and self._created_record:
            self._record.unlink(missing_ok=True)  # a run that never started leaves nothing behind
        if self._lock is not None:
            if self._finished and self._lines != self._real:
                self._record.unlink(missing_ok=True)  # the partial lines are converted: nothing to resume
            os.close(self._lock)  # releases the lock
            self._lock = None

    def __enter__(self) -> LabelledOutput:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        replacing = self._out is not None and not self.stdout and not self._finished and self._writing != self._lines
        self.close()
        if replacing and isinstance(error, CmalignError):
            error.add(f"{self.path} is unchanged: the old output stays until a run replaces it whole")


def _finite(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


def tally(outcomes: Counter[str], records: Iterable[Record]) -> None:
    """Count what was done with each item: the rules' actions, else whether the label differs from
    the annotator's (``labelled`` for a baseline that asks no annotator)."""
    for record in records:
        if record.answer is None:
            outcomes["labelled"] += 1
        else:
            outcomes[record.action or ("kept" if record.label == record.answer.label else "changed")] += 1


def describe(outcomes: Counter[str]) -> str:
    """``1399 changed, 1575 kept``: what a run did, most frequent outcomes in name order."""
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "nothing left to do"
