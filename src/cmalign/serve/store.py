"""The labels ``serve`` is given, kept durably beside the bank until a refit learns them.

Each label is a JSON line of ``<bank stem>.labels.jsonl``, appended, flushed and fsynced before the
request that brought it is answered: a server killed at any moment after a reply (``kill -9``)
keeps every label it acknowledged. The bank file itself is never written: the served model is
always the bank's preference samples plus every label in this file, refitted from both.

A label may carry a ``key`` (a Label Studio task, an id the caller gives): a later label with the
same key replaces the earlier one, both stay in the file. A Label Studio label also names its
``annotation``: a later line of the same annotation replaces it (the annotation updated), and a line
of that annotation with no label withdraws it (the annotation deleted, or updated to a skip), so
the task's label falls back to its latest annotation still standing, or to none. A torn last line
(a kill in the middle of a write) is cut off when the file is opened, with one line in the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

log = logging.getLogger("cmalign.serve")


@dataclass(frozen=True)
class StoredLabel:
    """One label a user gave: the text, its label, where it came from, its key (or None) and the
    annotation it came from (or None). A label of None withdraws that annotation."""

    text: str
    label: str | None
    source: str = "api"
    key: str | None = None
    annotation: str | None = None

    def to_json(self) -> dict:
        return {"text": self.text, "label": self.label, "source": self.source} | (
            {} if self.key is None else {"key": self.key}) | (
            {} if self.annotation is None else {"annotation": self.annotation})


def labels_path(bank_path: str | Path) -> Path:
    """Where the labels given to a server of ``bank.json`` are kept: ``bank.labels.jsonl``."""
    bank_path = Path(bank_path)
    return bank_path.with_name(f"{bank_path.stem}.labels.jsonl")


class LabelStore:
    """The labels file of one bank: read once when opened, appended to by :meth:`add`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._labels: list[StoredLabel] = self._read()
        self._by_annotation = {label.annotation: label for label in self._labels if label.annotation is not None}
        self._out = open(self.path, "ab")

    def _read(self) -> list[StoredLabel]:
        if not self.path.exists():
            return []
        labels, good = [], 0
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    break  # the torn end of a write cut short
                try:
                    row = json.loads(raw)
                    label = StoredLabel(row["text"], row["label"], row.get("source", "api"), row.get("key"),
                                        row.get("annotation"))
                    if label.label is None and label.annotation is None:
                        raise ValueError("a withdrawal names its annotation")
                    labels.append(label)
                except (ValueError, KeyError, TypeError):
                    raise DataError("not a label cmalign serve wrote (a line of text, label and source); move the "
                                    "file away to start without it", self.path, number) from None
                good += len(raw)
            torn = handle.tell() - good
        if torn:
            log.warning("%s: cut off a torn last line (%d bytes, a write interrupted); every label before it is kept",
                        self.path, torn)
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
        return labels

    def add(self, labels: list[StoredLabel]) -> int:
        """Append ``labels`` and fsync them: when this returns they survive a crash. The number kept."""
        data = b"".join(json.dumps(label.to_json(), ensure_ascii=False).encode("utf-8") + b"\n" for label in labels)
        with self._lock:
            self._out.write(data)
            self._out.flush()
            os.fsync(self._out.fileno())
            self._labels.extend(labels)
            self._by_annotation.update((label.annotation, label) for label in labels if label.annotation is not None)
            return len(self._labels)

    def annotated(self, annotation: str) -> StoredLabel | None:
        """The latest line of ``annotation``, withdrawn or not; None if it never came."""
        with self._lock:
            return self._by_annotation.get(annotation)

    def snapshot(self) -> tuple[list[StoredLabel], int]:
        """Every label standing: each annotation's latest line, unless it withdraws it; of those,
        a later one of the same key in place of the earlier. And how many lines that took (what a
        model fitted on them has learned)."""
        with self._lock:
            labels = list(self._labels)
        last: dict[str, int] = {}
        for i, label in enumerate(labels):
            if label.annotation is not None:
                last[label.annotation] = i
        standing = [i for i, label in enumerate(labels)
                    if label.label is not None and (label.annotation is None or last[label.annotation] == i)]
        latest: dict[str, int] = {}
        for i in standing:
            if labels[i].key is not None:
                latest[labels[i].key] = i
        return [labels[i] for i in standing if labels[i].key is None or latest[labels[i].key] == i], len(labels)

    def __len__(self) -> int:
        with self._lock:
            return len(self._labels)

    def close(self) -> None:
        with self._lock:
            self._out.close()
