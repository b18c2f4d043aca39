"""Reading a Label Studio JSON export as items: the text from each task's ``data``, the label from
its latest annotation that was not cancelled. :func:`iter_items <cmalign.data.io.iter_items>` reads
a ``.json`` file holding a JSON array through it, so ``fit`` learns from a reviewed project as it is
exported.

A task is ``{"data": {...}, "predictions": [...], "annotations": [...]}``; an annotation holds
``result`` regions ``{"from_name", "to_name", "type": "choices", "value": {"choices": [label]}}``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DataError
from .fields import TEXT_FIELDS, Item, checked_text, decode_json, pick


def label_studio_items(path: str | Path, *, text_field: str | None = None, label_field: str | None = None,
                       require_labels: bool = False, allow_empty: bool = False) -> Iterator[Item]:
    """The tasks of a Label Studio JSON export as items; an item's ``line`` is its task's place in
    the file (1-based), and errors name it (``FILE: task 3: ...``).

    The text is ``data[text_field]`` (default: ``text``, else ``input``). The label is the choice
    of the task's latest annotation that was not cancelled: latest by ``updated_at`` (else
    ``created_at``) when every such annotation has one, else the last in the list. Predictions are
    not labels and are ignored. ``label_field`` names the ``Choices`` control (its ``from_name``)
    when the annotations answer several. A task without an annotation has no label: an error with
    ``require_labels`` (:func:`~cmalign.data.io.read_preferences` leaves such tasks out instead).
    The file is one JSON array, so it is read whole.
    """
    path = Path(path)
    tasks = _load_tasks(path)
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError("expected a Label Studio task, an object with 'data' (export the project as JSON, "
                            "not JSON-MIN)", path, number, unit="task")
        data = task["data"]
        key = pick(data, text_field, TEXT_FIELDS)
        if key is None:
            raise DataError(f"its data has no text field {text_field or ' or '.join(TEXT_FIELDS)!r}; the fields are "
                            f"{sorted(data)}", path, number, unit="task")
        text = checked_text(data[key], key, path, number, "task", none="null")
        label = _annotated_label(task, label_field, path, number)
        if require_labels and label is None:
            raise DataError("has no annotation (none, or all cancelled)", path, number, unit="task")
        yield Item(text=text, label=label, line=number)
    if not tasks and not allow_empty:
        raise DataError("the file holds no items", path)


def _load_tasks(path: Path) -> list:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a file", path) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"damaged or not gzip data ({exc or type(exc).__name__})", path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason}); save the file as UTF-8", path,
                        raw.count(b"\n", 0, exc.start) + 1) from None
    tasks = decode_json(text, path)
    if not isinstance(tasks, list):
        raise DataError("expected a JSON array of Label Studio tasks", path)
    return tasks


def _annotated_label(task: dict, label_field: str | None, path: Path, number: int) -> str | None:
    annotations = task.get("annotations")
    if annotations is None:
        annotations = []
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DataError("its 'annotations' is not a list of objects", path, number, unit="task")
    if any(a.get("was_cancelled") not in (None, True, False) for a in annotations):
        raise DataError("an annotation's 'was_cancelled' is not true or false", path, number, unit="task")
    standing = [a for a in annotations if not a.get("was_cancelled")]
    if not standing:
        return None
    return _choice(_latest(standing), label_field, path, number)


def _time(annotation: dict) -> datetime | None:
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _latest(annotations: list[dict]) -> dict:
    """The latest annotation by its time stamps when all have one (ties: the later in the list),
    else the last in the list, the order Label Studio lists them in."""
    times = [_time(a) for a in annotations]
    if None in times:
        return annotations[-1]
    return max(zip(times, range(len(times)), annotations), key=lambda t: t[:2])[2]


def _choice(annotation: dict, label_field: str | None, path: Path, number: int) -> str:
    """The one choice an annotation made in the ``Choices`` control (``label_field``, else the only one)."""
    name = f"annotation {annotation['id']}" if "id" in annotation else "the annotation"
    result = annotation.get("result")
    if not isinstance(result, list):
        raise DataError(f"{name} has no 'result' list", path, number, unit="task")
    regions = [r for r in result if isinstance(r, dict) and r.get("type") == "choices"
               and (label_field is None or r.get("from_name") == label_field)]
    controls = list(dict.fromkeys(str(r.get("from_name")) for r in regions))
    if len(controls) > 1:
        raise DataError(f"{name} answers several Choices controls ({', '.join(controls)}); name the one that "
                        "holds the label with {=label_field}", path, number, unit="task")
    choices = []
    for region in regions:
        value = region.get("value")
        held = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(held, list):
            found = "no 'value'" if not isinstance(value, dict) else f"'choices' {_shown(held)}"
            raise DataError(f"{name} has {found}: a choices region holds \"value\": {{\"choices\": [label]}}",
                            path, number, unit="task")
        choices.extend(held)
    where = f" in {label_field!r}" if label_field else ""
    if not choices:
        raise DataError(f"{name} has no choice{where}", path, number, unit="task")
    if len(choices) > 1:
        raise DataError(f"{name} has several choices{where} ({', '.join(map(str, choices))}); cmalign learns one "
                        "label a text", path, number, unit="task")
    if not isinstance(choices[0], str) or not choices[0].strip():
        raise DataError(f"{name} has the choice {choices[0]!r}, not a label", path, number, unit="task")
    return choices[0]


def _shown(value: object) -> str:
    """A value as the export spells it, cut short."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
