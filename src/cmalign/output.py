"""Writing labelled items: one JSON line per item, a chunk at a time."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .data.io import Item
from .method.base import Record


def write_records(path: str | Path, items: Sequence[Item], chunks: Iterable[list[Record]], method: str,
                  progress: Callable[[int], object] = lambda n: None) -> Counter[str]:
    """Write each item with its record (``chunks`` follow ``items`` in order); flush after every
    chunk, so what is written stays written if a later chunk fails. Returns how often each outcome
    occurred: the rules' actions, else whether the label differs from the annotator's."""
    outcomes: Counter[str] = Counter()
    done = 0
    with open(path, "w", encoding="utf-8") as out:
        for records in chunks:
            for item, record in zip(items[done:done + len(records)], records):
                if record.answer is None:  # a baseline that asks no annotator
                    outcomes["labelled"] += 1
                else:
                    outcomes[record.action or ("kept" if record.label == record.answer.label else "changed")] += 1
                line = {"line": item.line, "text": item.text, **record.to_json(method)}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
            done += len(records)
            progress(len(records))
    return outcomes
