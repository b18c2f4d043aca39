"""What every reader of :mod:`cmalign.data` (and the memory bank's) shares: an item, the field
names a reader looks for, and :func:`decode_json`, the one way cmalign decodes JSON text."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.decoder import WHITESPACE, scanstring
from pathlib import Path
from typing import Any

from ..errors import DataError

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


def checked_text(text: Any, key: str, path: str | Path, number: int, unit: str | None = None, *,
                 none: str = "missing") -> str:
    """``text``, the value of the text field ``key``, if it is a string with a word in it; else the
    one error every reader gives (``none`` says what a None is: missing, or null)."""
    if isinstance(text, str) and text.strip():
        return text
    what = none if text is None else "empty" if isinstance(text, str) else f"a {type(text).__name__}, not a string"
    raise DataError(f"the text field {key!r} is {what}", path, number, unit=unit)


def pick(present: Iterable[str], wanted: str | None, defaults: Sequence[str]) -> str | None:
    """The field to read: ``wanted`` if present, else the first of ``defaults`` present (None: none is)."""
    present = list(present)
    if wanted is not None:
        return wanted if wanted in present else None
    return next((name for name in defaults if name in present), None)


# -- JSON ----------------------------------------------------------------------------------------

class _Refused(ValueError):
    """Raised inside the decoder for JSON that parses but is not read: the decoder's hooks know
    what is wrong, :func:`decode_json` adds where."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _object(pairs: list[tuple[str, Any]]) -> dict:
    # every object goes through here, so it is kept to one dict() and one len() in the usual case
    made = dict(pairs)
    if len(made) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {key!r} appears twice in one object (which one is meant?)")
            seen.add(key)
    return made


def _finite(number: str) -> float:
    value = float(number)
    if math.isinf(value):
        raise _Refused(f"the number {number[:24]}{'...' if len(number) > 24 else ''} is too large (not finite)")
    return value


def _no_constant(name: str) -> float:
    raise _Refused(f"{name} is not a number JSON allows")


_FINITE = json.JSONDecoder(object_pairs_hook=_object, parse_float=_finite, parse_constant=_no_constant)
_ANY_NUMBER = json.JSONDecoder(object_pairs_hook=_object)  # NaN and Infinity are left for a schema to name
_LONE_SURROGATE = ("a lone surrogate (an escape \\ud800 to \\udfff not in a pair) is not text: it cannot be "
                  "written as UTF-8")
_DEEP = "nested too deeply to read"


def decode_json(text: str, path: str | Path, line: int | None = None, *, finite: bool = True) -> Any:
    """The value of the JSON ``text`` read from ``path`` (the whole file, or its line ``line``),
    or a :class:`DataError` naming the file, the line and the problem.

    Stricter than :func:`json.loads`: a key twice in one object, a string with a lone surrogate
    and (with ``finite``) ``NaN``, ``Infinity`` or a number too large for a float are refused,
    as is nesting too deep for the decoder. Without ``finite`` the numbers are left to the caller,
    which names the field that holds one."""
    decoder = _FINITE if finite else _ANY_NUMBER
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise DataError(f"not valid JSON ({exc.msg} at character {exc.colno})", path, where) from None
    except _Refused as exc:
        raise _located(exc.problem, text, path, line, finite) from None
    except RecursionError:
        raise DataError(f"not valid JSON: {_DEEP}", path, line) from None
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        problem = str(exc)
        if "digits" in problem:
            problem = f"a number of more than {sys.get_int_max_str_digits()} digits"
        raise DataError(f"not valid JSON: {problem}", path, line) from None
    if may_hold_surrogate(text) and not _encodable(value):
        raise _located(_LONE_SURROGATE, text, path, line, finite) from None
    return value


def quick_decoder() -> Callable[[str], Any]:
    """The decoder :func:`decode_json` uses, without its checks for what it cannot see in the decoded
    value (a lone surrogate) and its error messages: for a reader of millions of lines, which calls
    :func:`decode_json` itself on a line that this refuses or that :func:`may_hold_surrogate` flags."""
    return _FINITE.decode


def may_hold_surrogate(text: str) -> bool:
    """Whether the JSON ``text`` has an escape that may decode to half a surrogate pair."""
    return "\\ud" in text or "\\uD" in text  # two substring searches: cheaper than a pattern


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:
        return True  # deeper than the encoder goes: not checked here
    return True


def _located(problem: str, text: str, path: str | Path, line: int | None, finite: bool) -> DataError:
    """The error for ``problem``, at ``line`` when the text is one line of a file, else at the
    line of the first such problem in the text (found again by a slow walk: only on this path)."""
    if line is None:
        try:
            found = _first_problem(text, _FINITE if finite else _ANY_NUMBER)
        except (RecursionError, ValueError, IndexError, StopIteration):
            found = None
        if found is not None:
            problem, at = found
            line = text.count("\n", 0, at) + 1
    return DataError(problem, path, line)


def _first_problem(text: str, decoder: json.JSONDecoder) -> tuple[str, int] | None:
    """(problem, character offset) of the first key repeated in its object, refused number or
    lone surrogate in ``text``, in reading order; None if there is none."""
    scalar = decoder.scan_once
    skip = lambda at: WHITESPACE.match(text, at).end()  # noqa: E731

    def value(at: int) -> int:
        at = skip(at)
        opening = text[at]
        if opening == "{":
            at, seen = skip(at + 1), set()
            if text[at] == "}":
                return at + 1
            while True:
                key, after = scanstring(text, at + 1)
                if key in seen:
                    raise _Found(f"the key {key!r} appears twice in one object (which one is meant?)", at)
                if not _encodable(key):
                    raise _Found(_LONE_SURROGATE, at)
                seen.add(key)
                at = skip(value(skip(after) + 1))
                if text[at] == "}":
                    return at + 1
                at = skip(at + 1)
        if opening == "[":
            at = skip(at + 1)
            if text[at] == "]":
                return at + 1
            while True:
                at = skip(value(at))
                if text[at] == "]":
                    return at + 1
                at = skip(at + 1)
        try:
            parsed, end = scalar(text, at)
        except _Refused as exc:
            raise _Found(exc.problem, at) from None
        if isinstance(parsed, str) and not _encodable(parsed):
            raise _Found(_LONE_SURROGATE, at)
        return end

    try:
        value(0)
    except _Found as found:
        return found.problem, found.at
    return None


class _Found(Exception):
    def __init__(self, problem: str, at: int) -> None:
        super().__init__(problem)
        self.problem, self.at = problem, at


def member_offsets(text: str) -> list[int]:
    """The character offset of each member of the array or object that the valid JSON ``text``
    holds (an element, or a key): where in the file each entry is, for errors that name its line."""
    skip = lambda at: WHITESPACE.match(text, at).end()  # noqa: E731
    at = skip(0)
    if at >= len(text) or text[at] not in "[{":
        return []
    opening = text[at]
    closing = "]" if opening == "[" else "}"
    at, offsets = skip(at + 1), []
    if text[at] == closing:
        return offsets
    while True:
        offsets.append(at)
        if opening == "{":
            _, at = scanstring(text, at + 1)
            at = skip(at) + 1  # past the colon
        _, at = _ANY_NUMBER.raw_decode(text, skip(at))
        at = skip(at)
        if text[at] == closing:
            return offsets
        at = skip(at + 1)
