"""An item and the field names a reader looks for: shared by every reader of :mod:`cmalign.data`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TEXT_FIELDS = ("text", "input")
LABEL_FIELDS = ("label",)


@dataclass(frozen=True)
class Item:
    """One text, with the user's label when it has one, where it came from (1-based line), and
    the other fields of its line (an ``id``, say), which outputs carry beside their own."""

    text: str
    label: str | None = None
    line: int = 0
    fields: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


def pick(present: Iterable[str], wanted: str | None, defaults: Sequence[str]) -> str | None:
    """The field to read: ``wanted`` if present, else the first of ``defaults`` present (None: none is)."""
    present = list(present)
    if wanted is not None:
        return wanted if wanted in present else None
    return next((name for name in defaults if name in present), None)
