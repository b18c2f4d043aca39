"""Reading a request's JSON: every problem is a :class:`RequestError` naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RequestError(Exception):
    """A request the server cannot act on: its HTTP ``status``, the ``field`` at fault (a JSON path
    such as ``labels[2].label``, or ``body``) and what is wrong with it, in a sentence."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"field": self.field, "message": self.message}}


def need(data: Any, name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """``data[name]``, which must be there and of ``kind``; ``where`` is the path of ``data``."""
    field = f"{where}.{name}" if where else name
    if not isinstance(data, Mapping):
        raise RequestError(422, where or "body", "expected a JSON object")
    if name not in data or data[name] is None:
        raise RequestError(422, field, "missing")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _kinds(kind):
        raise RequestError(422, field, f"expected {_kind_name(kind)}, got {_kind_name(type(value))}")
    return value


def text_at(value: Any, field: str) -> str:
    """``value`` as a text to label: a string with something in it."""
    if not isinstance(value, str):
        raise RequestError(422, field, f"expected a string, got {_kind_name(type(value))}")
    if not value.strip():
        raise RequestError(422, field, "empty text")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
             bool: "true or false", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _kinds(kind)))
