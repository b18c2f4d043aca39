"""``datasets --write``: a bundled dataset -> the files a user's own run starts from.

The files are the paper's protocol split (:func:`cmalign.data.protocol_split`), so what the
quickstart does on them is what ``cmalign bench`` measures: ``prefs.jsonl`` holds the preference
sample with its labels (the user's few labels), ``items.jsonl`` the evaluation items with their
gold label under ``gold`` (not ``label``: they are the items to label, and the gold one is there to
check the result against), and ``labels.txt`` the label set, one label a line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..data import Budget, Item, load_bundled, protocol_split
from ..errors import DataError
from ..files import check_outputs, write_atomically
from ..progress import QUIET, Progress
from ..settings import setting

FILES = ("prefs.jsonl", "items.jsonl", "labels.txt")


@dataclass(frozen=True)
class WriteExampleOptions:
    """Write the bundled dataset ``name`` into ``folder`` (created if missing) as three files:
    ``prefs.jsonl`` (a seeded ``budget`` of the pool, text and label), ``items.jsonl`` (the items
    to label, text and gold label) and ``labels.txt``. An existing file is replaced only with
    ``overwrite``."""

    name: str
    folder: str | Path
    budget: str = setting("0.02", "--write: the share of the pool in prefs.jsonl, e.g. 0.02 or n=200")
    seed: int = setting(0, "--write: seed of the split")
    overwrite: bool = setting(False, "--write: replace the files if they exist", action="store_true")


@dataclass(frozen=True)
class ExampleFiles:
    """What :func:`write_example` wrote: how many labelled and unlabelled items, and where."""

    name: str
    preference: int
    items: int
    labels: int
    written: tuple[Path, ...]

    def lines(self) -> list[str]:
        """What the job did, in words."""
        return [f"wrote {self.name}: {self.preference} labelled items, {self.items} items to label (their gold label "
                f"under 'gold'), {self.labels} labels", f"wrote {', '.join(str(p) for p in self.written)}"]


def _jsonl(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _text_and(item: Item, key: str) -> dict:
    return {"text": item.text, key: item.label}


def write_example(options: WriteExampleOptions, progress: Progress = QUIET) -> ExampleFiles:
    """Write the example files; every target is checked before the first is written, so a refusal
    leaves the folder as it was.

    Examples
    --------
    >>> import tempfile
    >>> from cmalign.jobs import WriteExampleOptions, write_example
    >>> folder = tempfile.mkdtemp()
    >>> written = write_example(WriteExampleOptions("massive_scenario", folder, budget="n=50"))
    >>> written.preference, written.items, written.labels
    (50, 2974, 18)
    >>> write_example(WriteExampleOptions("massive_scenario", folder))
    Traceback (most recent call last):
    ...
    cmalign.errors.DataError: .../prefs.jsonl: exists already: overwrite to replace it
    """
    budget = Budget.parse(options.budget)
    if options.seed < 0:
        raise DataError(f"{{=seed}} {options.seed}: a seed is a whole number from 0")
    dataset = load_bundled(options.name)  # an unknown name fails before anything is made
    folder = Path(options.folder)
    if folder.exists() and not folder.is_dir():
        raise DataError("is not a folder", folder)
    targets = [folder / name for name in FILES]
    if folder.is_dir():
        check_outputs(targets, (), overwrite=options.overwrite)
    progress.phase(f"splitting {options.name}")
    split = protocol_split(dataset, budget, options.seed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot make the folder ({exc.strerror or exc})", folder) from None
    check_outputs(targets, (), overwrite=options.overwrite)
    contents = (_jsonl(_text_and(i, "label") for i in split.preference),
                _jsonl(_text_and(i, "gold") for i in split.evaluation),
                "".join(label + "\n" for label in dataset.labels).encode())
    for target, data in zip(targets, contents):
        write_atomically(target, lambda handle, data=data: handle.write(data))
    return ExampleFiles(name=options.name, preference=len(split.preference), items=len(split.evaluation),
                        labels=len(dataset.labels), written=tuple(targets))
