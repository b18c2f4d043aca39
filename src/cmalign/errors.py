"""Errors a user can act on.

Every error raised for bad input names where the problem is (file, line or column) and what was
expected, so the CLI can print it as one line and exit non-zero instead of a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

OPTION = re.compile(r"\{=(\w+)\}")  # a setting named in a message: {=max_calls}


def shown(message: str, names: Mapping[str, str] | None = None) -> str:
    """``message`` with each setting it names (``{=max_calls}``) written as ``names`` spells it
    (the command line passes its flags, ``--max-calls``), else as the parameter (``max_calls``)."""
    return OPTION.sub(lambda m: (names or {}).get(m[1], m[1]), message)


class CmalignError(Exception):
    """Base class for errors caused by the user's input or settings, not by a bug.

    A message names a setting as ``{=parameter}`` (``"{=max_calls} 0: must be at least 1"``):
    ``str()`` shows the parameter's name, and :meth:`render` the spelling a front end uses for it
    (the command line's flags), so the library never speaks of flags.
    """

    also: tuple[str, ...] = ()  # what else the user should know, added where the error passes (see add)

    def add(self, clause: str) -> CmalignError:
        """Say ``clause`` after the message too (``"; out.jsonl is unchanged"``): what a layer the
        error passes through knows, such as what it kept."""
        self.also = (*self.also, clause)
        return self

    def __str__(self) -> str:
        return self.render()

    def render(self, names: Mapping[str, str] | None = None) -> str:
        return shown(super().__str__() + "".join(f"; {clause}" for clause in self.also), names)


class DataError(CmalignError):
    """A data, label or bank file is malformed or does not fit the rest of the input.

    ``line`` is where in the file, counted in ``unit``: a text file's line (``FILE:3:``, as an
    editor shows it) by default, or a ``row`` of a Parquet file or a ``task`` of a Label Studio
    export (``FILE: row 3:``), whose numbers no editor shows as lines.
    """

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None,
                 column: str | None = None, unit: str | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.unit = unit
        where = ""
        if self.path is not None:
            where = self.path
            if line is not None:
                where += f":{line}" if unit is None else f": {unit} {line}"
            if column is not None:
                where += f" (column {column!r})"
            where += ": "
        super().__init__(where + problem)


class ModelError(CmalignError):
    """The embedded model is missing or its files are not the ones this version was built for."""
