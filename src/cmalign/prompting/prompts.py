"""Every prompt cmalign sends to a chat model, in one place.

``cmalign prompts`` prints them as a TOML file; edit any of them and pass the file as the
``prompts`` setting to use yours instead. Templates are Python format strings; each may use only
the fields listed for it in :data:`FIELDS`, each as a plain ``{field}`` (no format spec, conversion,
attribute or index: the texts filled in are strings, and a spec would fail only when the template
is used), and a file that uses another field, misses a required one, or names an unknown template
is refused with the file and template named, when it is loaded.
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..errors import DataError


@dataclass(frozen=True)
class Prompts:
    """The templates. Strategies build chat messages from them (see ``strategies.py``); the label
    scorers (``hf-score:``, ``openai-score:``) their own."""

    # every strategy: the system message, with the allowed labels one per line
    system: str = (
        "You label texts the way one user does. The allowed labels are:\n{labels}\n"
        "Answer with exactly one label from this list, written as in the list, and nothing else.")
    # vanilla, and the first turn of refine: the text to label
    query: str = "Text: {text}\nLabel:"
    # fot: the k most similar labelled examples, then the text
    few_shot: str = "Labelled examples:\n\n{examples}\n\nText: {text}\nLabel:"
    example: str = "Text: {text}\nLabel: {label}"
    # cot: the most similar labelled example with a one-line reason, then the text
    chain: str = ("A labelled example, with the reason for its label:\n\n{example}\n\n"
                  "Now the text to label. Give a one-line reason, then the label on its own line as "
                  "'Label: <label>'.\nText: {text}\nReason:")
    reasoned_example: str = "Text: {text}\nReason: {reason}\nLabel: {label}"
    # cot: how the reason for a labelled example is written (once per example, cached)
    reason: str = ("Text: {text}\nLabel: {label}\n"
                   "In one short sentence, say why this label fits this text.")
    # refine: the model judges its own answer, then revises it when it judged it wrong
    judge: str = ("Check your answer. Is \"{answer}\" the right label for this text, from the list? "
                  "Reply with one word: Correct or Incorrect.")
    revise: str = "Then give the right label from the list instead. Answer with the label only."
    # hf-score: the system message before the text; the model scores each label as the answer
    scorer_system: str = (
        "You label a user's text with exactly one label from this list:\n{labels}\n"
        "Answer with the label only, written exactly as in the list.")
    # openai-score: the labels as lettered options (a page of at most 20); the model answers with a
    # letter, and its log-probabilities score every option
    options_system: str = (
        "You label a user's text with exactly one option from this list:\n{options}\n"
        "Answer with the option's letter only.")
    options_query: str = "Text: {text}\nOption:"
    # openai-score, past 20 labels: the last option of every page
    options_none: str = "none of these"

    def digest(self) -> str:
        """A short hash of the chat strategies' templates: part of a chat annotator's identity.

        The scorers' templates are left out: a label scorer's identity hashes its own prompt.
        """
        text = "\x00".join(getattr(self, f.name) for f in fields(self) if f.name not in SCORER_TEMPLATES)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def to_toml(self) -> str:
        lines = ["# cmalign prompts: edit, then give this file as the prompts of a run. Fields in {braces} are filled in;",
                 "# write a literal brace as {{ or }}.", ""]
        for f in fields(self):
            lines.append(f"# fields: {', '.join(sorted(FIELDS[f.name]))}")
            body = getattr(self, f.name).replace("\\", "\\\\").replace('"""', '\\"""')
            lines.append(f'{f.name} = """\n{body}"""\n')
        return "\n".join(lines)

    @classmethod
    def load(cls, path: str | Path) -> Prompts:
        """The defaults with the templates ``path`` (TOML) sets replaced."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"cannot read prompts ({exc.strerror})", path) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"not a valid TOML file ({exc})", path) from None
        known = {f.name for f in fields(cls)}
        for name, value in data.items():
            if name not in known:
                raise DataError(f"unknown template {name!r}; templates: {', '.join(sorted(known))}", path)
            if not isinstance(value, str):
                raise DataError(f"template {name!r} must be a string", path)
            _check(name, value, path)
        return replace(cls(), **data)


# the fields each template may use; those in REQUIRED must appear
FIELDS = {
    "system": {"labels"}, "query": {"text"}, "few_shot": {"examples", "text"}, "example": {"text", "label"},
    "chain": {"example", "text"}, "reasoned_example": {"text", "reason", "label"}, "reason": {"text", "label"},
    "judge": {"answer"}, "revise": set(), "scorer_system": {"labels"}, "options_system": {"options"},
    "options_query": {"text"}, "options_none": set(),
}
SCORER_TEMPLATES = {"scorer_system", "options_system", "options_query", "options_none"}
REQUIRED = {"system": {"labels"}, "query": {"text"}, "few_shot": {"examples", "text"}, "chain": {"example", "text"},
            "example": {"text", "label"}, "reasoned_example": {"text", "label"}, "reason": {"text", "label"},
            "scorer_system": {"labels"}, "options_system": {"options"}, "options_query": {"text"}}


def _check(name: str, template: str, path: Path) -> None:
    try:
        parsed = [(field, spec, conversion) for _, field, spec, conversion in string.Formatter().parse(template)
                  if field is not None]
    except ValueError as exc:
        raise DataError(f"template {name!r}: {exc} (write a literal brace as {{{{ or }}}})", path) from None
    for field, spec, conversion in parsed:
        if spec or conversion:
            written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise DataError(f"template {name!r} writes {written}; a field is filled in as it is: write "
                            f"{{{field}}}", path)
    used = {field for field, _, _ in parsed}
    unknown = used - FIELDS[name]
    if unknown:
        raise DataError(f"template {name!r} uses {{{sorted(unknown)[0]}}}; it may use only "
                        f"{', '.join('{' + f + '}' for f in sorted(FIELDS[name])) or 'no fields'}", path)
    missing = REQUIRED.get(name, set()) - used
    if missing:
        raise DataError(f"template {name!r} must use {{{sorted(missing)[0]}}}", path)
