"""The labelled output of ``annotate``: one JSON line per item, a chunk at a time, never clobbered.

- An existing output is refused unless the run says ``resume`` or ``overwrite``.
- With ``resume``, every complete line is kept, a torn last line (a run killed mid-write) is cut
  off, the kept lines are checked against the input (same line numbers and texts) and against the
  record of the run that wrote them (same input, bank, annotator and method), and labelling starts
  after them: no finished item is labelled again.
- While a run writes, it holds a lock on ``<output>.cmalign-run``, the record of the run: a second
  writer to the same output is refused at once. The lock dies with the process, so a run killed
  with ``kill -9`` leaves nothing to clean up.
- Each chunk is flushed as soon as it is written. Neither writing nor resuming holds more than a
  line of the file in memory.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .data.io import Item
from .errors import DataError
from .files import writable_target
from .method.base import Record

RUN_SUFFIX = ".cmalign-run"
COMPARED = ("bank", "annotator", "method", "adapt")  # what a resumed run must share with the one it continues;
# the input is checked line by line (numbers and texts), so a renamed input file still resumes


class LabelledOutput:
    """The output file of one ``annotate`` run. :meth:`claim` it before loading any model; once the
    run's identity is known, :meth:`start` it to learn how many items are done; then :meth:`write`."""

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
        if resume and overwrite:
            raise DataError("--resume keeps what is there and --overwrite replaces it: give one of them", path)
        self.path, self.resume, self.overwrite = Path(path), resume, overwrite
        self._lock: int | None = None
        self._out = None

    def claim(self, input_path: str | Path) -> LabelledOutput:
        """Check the path and take the lock; fail now rather than after the model has loaded."""
        real = writable_target(self.path)
        if real == Path(os.path.realpath(input_path)):
            raise DataError("is the input file itself; write the labels to another file", self.path)
        has_output = real.exists() and real.stat().st_size > 0
        if has_output and not (self.resume or self.overwrite):
            raise DataError("exists already: --resume to label only the items it lacks, --overwrite to "
                            "replace it", self.path)
        record = real.with_name(real.name + RUN_SUFFIX)
        self._created_record = not record.exists()
        try:
            self._lock = os.open(record, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataError(f"cannot write the run record {record.name} ({exc.strerror})", self.path) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise DataError("another cmalign annotate is writing this file now; wait for it to finish", self.path) \
                from None
        self._real, self._record = real, record
        self._earlier = os.read(self._lock, 1 << 20).decode("utf-8", "replace")
        return self

    def start(self, items: Iterator[Item], run: dict[str, Any]) -> int:
        """Record ``run`` (what determines the labels) and open the file; the number of items done.
        With ``resume``, the done items are taken from ``items`` (checked against the lines kept),
        so what is left in it is what to label."""
        done = 0
        if self.resume and self._real.exists() and self._real.stat().st_size > 0:
            done = self._kept(items, run)
        elif self.overwrite or not self._real.exists():
            self._real.write_bytes(b"")
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, (json.dumps(run, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"), 0)
        os.fsync(self._lock)
        self._out = open(self._real, "a", encoding="utf-8")
        return done

    def _kept(self, items: Iterator[Item], run: dict[str, Any]) -> int:
        """Check the lines an earlier run left against ``items`` (taking one item per line), cut a
        torn last line off, and count them. Reads the file a line at a time."""
        try:
            earlier = json.loads(self._earlier) if self._earlier.strip() else None
        except json.JSONDecodeError:
            earlier = None
        if earlier is None:
            raise DataError(f"there is no record of the run that wrote it ({self._record.name}); "
                            "--overwrite to label everything again", self.path)
        differs = [key for key in COMPARED if earlier.get(key) != run.get(key)]
        if differs:
            raise DataError(f"was written with another {differs[0]} ({earlier.get(differs[0])!r}, now "
                            f"{run[differs[0]]!r}); --overwrite to label everything again", self.path)
        good, done = 0, 0
        with open(self._real, "rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # the torn end of a run that was killed mid-write
                try:
                    row = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise DataError("is not valid JSON before its last line; not resuming over a damaged "
                                    "file (--overwrite to start again)", self.path, done + 1) from None
                item = next(items, None)
                if item is None or row.get("line") != item.line or row.get("text") != item.text:
                    raise DataError("does not match the input here (another input file?); --overwrite to "
                                    "start again", self.path, done + 1)
                good += len(raw)
                done += 1
            torn = handle.tell() != good
        if torn:
            with open(self._real, "r+b") as handle:
                handle.truncate(good)
        return done

    def write(self, items: Sequence[Item], records: Sequence[Record], method: str) -> None:
        try:
            for item, record in zip(items, records):
                line = {"line": item.line, "text": item.text, **record.to_json(method)}
                self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._out.flush()
        except OSError as exc:
            raise DataError(f"cannot write ({exc.strerror}); the lines written so far are kept: "
                            "--resume once the problem is fixed", self.path) from None

    def close(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass  # a full disk: write() has said so already
        elif self._lock is not None and self._created_record:
            self._record.unlink(missing_ok=True)  # a run that never started leaves nothing behind
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    def __enter__(self) -> LabelledOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
