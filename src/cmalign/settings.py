"""A job's setting, declared once: its default, what it means, and how a command line takes it.

The options classes (:class:`~cmalign.jobs.AnnotateOptions`, :class:`~cmalign.serve.ServeOptions`,
:class:`~cmalign.chat.options.BackendOptions`, ...) declare their settings with :func:`setting`, and
the ``cmalign`` command makes each one a flag from that declaration (:func:`flags`): a default is
stated in one place, and the help a user reads is the library's own account of the setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def setting(default: Any, help: str, **flag: Any) -> Any:
    """A dataclass field with ``default``; ``help`` says what it sets. ``flag``: how a command line
    takes it, as argparse's keywords (``type`` defaults to the default's own; ``name``: a flag
    other than the field's name with dashes)."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


def flags(cls: type, names: tuple[str, ...] | None = None) -> list[tuple]:
    """Each declared setting of ``cls`` (or of ``names`` only, in that order) as (flag, type,
    default, help, argparse keywords); a yes/no setting as a switch, with no default to state."""
    declared = {f.name: f for f in dataclasses.fields(cls) if "help" in f.metadata}
    rows = []
    for name in names or tuple(declared):
        f = declared[name]
        keywords = dict(f.metadata["flag"])
        flag = keywords.pop("name", "--" + name.replace("_", "-"))
        switch = isinstance(f.default, bool)
        plain = switch or f.default is None or isinstance(f.default, str)
        kind = keywords.pop("type", None if plain else type(f.default))
        rows.append((flag, kind, None if switch else f.default, f.metadata["help"], keywords))
    return rows
