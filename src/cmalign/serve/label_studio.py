"""Label Studio's ML backend protocol, as its own server code reads and writes it.

Label Studio (``label_studio/ml/api_connector.py``) sends ``POST /setup`` with ``{"project":
"ID.TIMESTAMP", "schema": LABEL_CONFIG, ...}`` and reads ``model_version`` back; ``POST /predict``
with ``{"tasks": [task], "project", "label_config", "params"}`` and reads ``results``, one per task
in order, each ``{"result": [region], "score", "model_version"}``; and, through the webhook it
creates when a backend is connected, ``POST /webhook`` with ``{"action", "annotation", "task",
"project": {"id", "label_config", ...}}`` (``START_TRAINING`` carries the project alone). The
SDK (``label_studio_ml/api.py``) answers a webhook with 201 and ``{"result", "status": "ok"}``.

A text-classification config is one ``<Text name=N value="$KEY"/>`` and one ``<Choices
name=C toName=N>``: predictions name C and N, and the text is the task's ``data[KEY]``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

from ..interchange import choice_region
from .requests import RequestError, need, text_at

# the events that teach the model; ANNOTATIONS_CREATED is an import of annotated tasks, and
# ANNOTATIONS_DELETED ({"annotations": [{"id"}]}) takes back what deleted annotations taught
TRAINING_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED",
                   "START_TRAINING")


@dataclass(frozen=True)
class LabelConfig:
    """What a project's labelling config says a prediction is: the Choices control's name
    (``from_name``), the Text object's (``to_name``), the task data key of the text, the choices."""

    from_name: str
    to_name: str
    text_key: str
    choices: tuple[str, ...]


def parse_config(xml: Any, field: str) -> LabelConfig:
    """The text-classification part of a labelling config (``field``: where it came from)."""
    if not isinstance(xml, str) or not xml.strip():
        raise RequestError(422, field, "expected a labelling config (XML)")
    try:
        # Label Studio's own config; expat (as bundled with Python 3.11) refuses entity expansion bombs
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise RequestError(422, field, f"not XML ({exc})") from None
    texts = {t.get("name"): t.get("value", "") for t in root.iter("Text") if t.get("name")}
    for choices in root.iter("Choices"):
        to_name = choices.get("toName")
        if choices.get("name") and to_name in texts and texts[to_name].startswith("$"):
            values = tuple(c.get("value") or c.get("alias") or "" for c in choices.iter("Choice"))
            return LabelConfig(choices.get("name"), to_name, texts[to_name][1:], tuple(v for v in values if v))
    raise RequestError(422, field, "no <Choices> over a <Text value=\"$...\"> in the config: cmalign serves "
                                   "text classification")


def task_text(task: Any, config: LabelConfig, field: str) -> str:
    """The text a task asks about: ``task["data"][text_key]``."""
    data = need(task, "data", dict, field)
    if config.text_key not in data:
        raise RequestError(422, f"{field}.data.{config.text_key}",
                           f"missing (the config's <Text> reads ${config.text_key}; the task has {sorted(data)[:5]})")
    return text_at(data[config.text_key], f"{field}.data.{config.text_key}")


def prediction(label: str | None, score: float | None, config: LabelConfig, version: str) -> dict[str, Any]:
    """One task's prediction: the label as the config's choice (none when the config does not offer
    it), its score, and the model version."""
    offered = label is not None and (not config.choices or label in config.choices)
    out: dict[str, Any] = {"result": [choice_region(label, config.from_name, config.to_name)] if offered else [],
                           "model_version": version}
    if score is not None:
        out["score"] = score
    return out


def annotation_key(annotation: Any, field: str) -> str:
    """The name an annotation's labels are stored under: its id, which Label Studio numbers across
    every project of one instance."""
    if not isinstance(annotation, dict):
        raise RequestError(422, field, "expected an annotation object")
    number = annotation.get("id")
    if not isinstance(number, int) or isinstance(number, bool):
        raise RequestError(422, f"{field}.id", "expected the annotation's id, a number")
    return f"label-studio:annotation:{number}"


def annotated_label(annotation: Any, config: LabelConfig, field: str) -> str | None:
    """The one choice an annotation made in the config's control; None for a cancelled (skipped)
    annotation."""
    if not isinstance(annotation, dict):
        raise RequestError(422, field, "expected an annotation object")
    if annotation.get("was_cancelled"):
        return None
    result = need(annotation, "result", list, field)
    for n, region in enumerate(result):
        if isinstance(region, dict) and region.get("from_name") == config.from_name:
            value = region.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            where = f"{field}.result[{n}].value.choices"
            if not isinstance(choices, list) or len(choices) != 1:
                raise RequestError(422, where, "expected one choice (cmalign learns one label a text)")
            return text_at(choices[0], f"{where}[0]")
    raise RequestError(422, f"{field}.result", f"no choice in the control {config.from_name!r}")
