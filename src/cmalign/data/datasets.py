"""The bundled benchmark datasets and the paper's protocol split.

A dataset is a ``large`` pool (where the preference sample is drawn from) and a ``small``
evaluation set. Where a dataset has only ``small`` (stackexchange), the preference sample is drawn
from ``small`` and the rest of it is the evaluation set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import LabelSet
from .io import Item, check_labels, read_items

_BUNDLE = "cmalign.data.bundled"


@dataclass(frozen=True)
class Dataset:
    """A labelled pool for preference samples (may be absent) and a labelled evaluation set."""

    name: str
    large: tuple[Item, ...] | None
    small: tuple[Item, ...]
    labels: LabelSet


@dataclass(frozen=True)
class Budget:
    """How many preference samples the user labels: a fraction of the pool, or a count.

    >>> Budget.parse("0.05").size(10003)
    500
    """

    fraction: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of fraction and count")
        if self.fraction is not None and not (0.0 < self.fraction <= 1.0):
            hint = " (for a count of items write n=N)" if self.fraction > 1 else ""
            raise DataError(f"budget {self.fraction:g} is not a fraction in (0, 1]{hint}")
        if self.count is not None and self.count < 1:
            raise DataError(f"budget count {self.count} is below 1")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``0.05`` or ``5%`` is a fraction; ``n=500`` is a count."""
        raw = text.strip()
        try:
            if raw.startswith("n="):
                return cls(count=int(raw[2:]))
            if raw.endswith("%"):
                return cls(fraction=float(raw[:-1]) / 100.0)
            value = float(raw)
        except ValueError:
            raise DataError(f"budget {text!r} is neither a fraction such as 0.05 nor a count such "
                            "as n=500") from None
        if not math.isfinite(value):
            raise DataError(f"budget {text!r} is not a number")
        return cls(fraction=value)

    def size(self, pool: int) -> int:
        if self.count is not None:
            return self.count
        return max(1, round(self.fraction * pool))

    def __str__(self) -> str:
        return f"n={self.count}" if self.count is not None else f"{self.fraction:g}"


@dataclass(frozen=True)
class Split:
    """The preference sample the user labels, and the items CM is scored on."""

    preference: tuple[Item, ...]
    evaluation: tuple[Item, ...]


def bundled_names() -> list[str]:
    """Names of the datasets shipped with the package."""
    root = resources.files(_BUNDLE)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def _read_pair(name: str, large_path: Path | None, small_path: Path, **fields: str | None) -> Dataset:
    large = read_items(large_path, require_labels=True, **fields) if large_path else None
    small = read_items(small_path, require_labels=True, **fields)
    labels = LabelSet.of(item.label for item in (*(large or ()), *small))
    if large is not None:
        large = check_labels(large, labels, large_path)
    small = check_labels(small, labels, small_path)
    return Dataset(name=name, large=None if large is None else tuple(large), small=tuple(small),
                   labels=labels)


def load_bundled(name: str) -> Dataset:
    """Load a bundled dataset by name (see :func:`bundled_names`)."""
    if name not in bundled_names():
        raise DataError(f"no bundled dataset {name!r}; the bundled ones are {', '.join(bundled_names())}")
    folder = resources.files(_BUNDLE) / name
    with resources.as_file(folder) as path:
        large = path / "large.jsonl.gz"
        return _read_pair(name, large if large.exists() else None, path / "small.jsonl.gz")


def load_folder(folder: str | Path, *, text_field: str | None = None,
                label_field: str | None = None) -> Dataset:
    """Load a user's folder holding ``large.jsonl`` and/or ``small.jsonl`` (or .csv, .tsv, .parquet)
    with labels.

    With only one of the two files, it plays the part of ``small``: the preference sample is drawn
    from it and the rest is evaluated.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder", folder)

    def find(stem: str) -> Path | None:
        for suffix in (".jsonl", ".jsonl.gz", ".csv", ".tsv", ".parquet"):
            if (folder / (stem + suffix)).exists():
                return folder / (stem + suffix)
        return None

    large, small = find("large"), find("small")
    if small is None:
        small, large = large, None
    if small is None:
        raise DataError("holds neither large.jsonl nor small.jsonl (nor .csv)", folder)
    return _read_pair(folder.name, large, small, text_field=text_field, label_field=label_field)


def describe_bundled() -> str:
    """A table of the bundled datasets (labels, items in each split) and where their sources are."""
    lines = [f"{'dataset':<18} {'labels':>6} {'large':>7} {'small':>7}"]
    for name in bundled_names():
        ds = load_bundled(name)
        lines.append(f"{name:<18} {len(ds.labels):>6} {'-' if ds.large is None else len(ds.large):>7} "
                     f"{len(ds.small):>7}")
    return "\n".join(lines) + f"\n\nsources and licences: {resources.files('cmalign.data') / 'bundled' / 'SOURCES.md'}"


def load_datasets(names: Sequence[str] = (), folder: str | Path | None = None, *, text_field: str | None = None,
                  label_field: str | None = None) -> list[Dataset]:
    """The user's ``folder`` if given, else the bundled datasets ``names`` (all of them if none)."""
    if folder is not None:
        return [load_folder(folder, text_field=text_field, label_field=label_field)]
    return [load_bundled(name) for name in (names or bundled_names())]


def parse_seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise DataError(f"a seed must be a whole number from 0, got {text!r}")
    return seed


def protocol_split(dataset: Dataset, budget: Budget, seed: int, limit: int | None = None) -> Split:
    """The paper's split: a seeded random preference sample from ``large``, evaluation on ``small``.

    Without ``large``, the sample comes from ``small`` and the remainder is evaluated. Indices are
    drawn with ``numpy.random.default_rng(seed)`` and kept in file order, so the same arguments
    always give the same split. ``limit`` keeps a seeded subset of that many evaluation items (for
    slow annotators); the preference sample is the same with or without it.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit {limit} is below 1")
    pool, n = pool_and_size(dataset, budget)
    rng = np.random.default_rng(seed)
    return split_from(dataset, np.sort(rng.choice(len(pool), size=n, replace=False)), seed, limit)


def pool_and_size(dataset: Dataset, budget: Budget) -> tuple[tuple[Item, ...], int]:
    """Where the preference sample is drawn from (``large``, else ``small``) and how many it holds."""
    pool = dataset.large if dataset.large is not None else dataset.small
    n = budget.size(len(pool))
    room = len(pool) if dataset.large is not None else len(pool) - 1
    if n > room:
        raise DataError(f"budget {budget} asks for {n} preference samples but {dataset.name!r} has "
                        f"{room} to draw from")
    return pool, n


def split_from(dataset: Dataset, chosen: Sequence[int], seed: int, limit: int | None = None) -> Split:
    """The split whose preference sample is the pool items at ``chosen`` (sorted indices into
    ``large``, else into ``small``, whose other items are then the evaluation set); ``limit`` as in
    :func:`protocol_split`."""
    pool = dataset.large if dataset.large is not None else dataset.small
    preference = tuple(pool[i] for i in chosen)
    if dataset.large is not None:
        evaluation = dataset.small
    else:
        taken = set(int(i) for i in chosen)
        evaluation = tuple(item for i, item in enumerate(pool) if i not in taken)
    if limit is not None and limit < len(evaluation):
        # a stream of its own, so the subset does not shift the preference sample
        keep = np.sort(np.random.default_rng([seed, 1]).choice(len(evaluation), size=limit, replace=False))
        evaluation = tuple(evaluation[i] for i in keep)
    return Split(preference=preference, evaluation=evaluation)
