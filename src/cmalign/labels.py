"""The label set and the one normaliser used everywhere.

The same function turns an annotator's raw answer into a bank key when the memory bank is
built, when it is looked up, and when answers are scored. The public reference code normalised
in one place and not the other, so keys that were not labels were never hit and mixed-case gold
labels could never be scored correct; routing everything through :meth:`LabelSet.resolve`
rules that out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import DataError

_SEPARATORS = re.compile(r"[\s_\-./:]+")
_EDGE_JUNK = re.compile(r"^[\W]+|[\W]+$")
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+)?(?:answer|label|category|intent|class)\b\s*(?:is\b|[:=])\s*", re.IGNORECASE)


def normalize(text: str) -> str:
    """Return the comparison key of a label or an answer.

    Case, Unicode form, surrounding quotes and punctuation, and the separators ``_ - . / :`` and
    runs of white space do not matter; everything else does.

    >>> normalize("  'Refund_not-showing  up.' ")
    'refund not showing up'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SEPARATORS.sub(" ", text).strip()
    return _EDGE_JUNK.sub("", text).strip()


def first_line(text: str) -> str:
    r"""The first line of a reply that is not blank, stripped ('' if there is none).

    >>> first_line("\n  Refund  \nbecause ...")
    'Refund'
    """
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _answer_key(raw: str) -> str:
    """Normalise a free-text answer: also drop a leading 'Answer:'/'Label:' and keep the first line."""
    return normalize(_ANSWER_PREFIX.sub("", first_line(raw)))


@dataclass(frozen=True)
class Resolved:
    """A raw answer seen through the normaliser.

    ``key`` is what the memory bank is indexed by: the canonical label when the answer is in the
    label set, otherwise the normalised answer text (out-of-set answers are bank keys too).
    """

    key: str
    label: str | None


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of canonical labels, with optional human-readable descriptions.

    Order matters only for breaking ties, so that the same input always gives the same output.

    >>> ls = LabelSet.of(["card arrival", "Refund not showing up"])
    >>> ls.resolve("refund_not_showing_up").label
    'Refund not showing up'
    >>> ls.resolve("something else")
    Resolved(key='something else', label=None)
    """

    labels: tuple[str, ...]
    descriptions: tuple[str, ...] = ()
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _by_key: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.labels:
            raise DataError("the label set is empty")
        if self.descriptions and len(self.descriptions) != len(self.labels):
            raise ValueError("descriptions must be empty or one per label")
        by_key: dict[str, str] = {}
        for label in self.labels:
            key = normalize(label)
            if not key:
                raise DataError(f"label {label!r} is empty once normalised")
            if key in by_key:
                raise DataError(f"labels {by_key[key]!r} and {label!r} are the same once case, "
                                "punctuation and separators are ignored")
            by_key[key] = label
        object.__setattr__(self, "_by_key", by_key)
        object.__setattr__(self, "_index", {label: i for i, label in enumerate(self.labels)})

    @classmethod
    def of(cls, labels: Iterable[str]) -> LabelSet:
        """Build a label set from labels in first-appearance order; repeats are dropped."""
        return cls(tuple(dict.fromkeys(labels)))

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def index(self, label: str) -> int:
        return self._index[label]

    def canonical(self, text: str) -> str | None:
        """The canonical label that ``text`` names, or None."""
        return self._by_key.get(normalize(text))

    def resolve(self, raw: str) -> Resolved:
        """Map an annotator's raw answer to its bank key and canonical label (None if out of set)."""
        label = self._by_key.get(normalize(raw))
        if label is None:
            label = self._by_key.get(_answer_key(raw))
        if label is not None:
            return Resolved(key=label, label=label)
        return Resolved(key=_answer_key(raw), label=None)

    def readable(self) -> list[str]:
        """A readable phrase per label, for models that compare text with label names.

        A description wins where one is given. Otherwise separators become spaces and tokens
        that every label shares are dropped: ``english.stackexchange.com.txt`` reads
        ``english`` when all labels end in ``.stackexchange.com.txt``.
        """
        tokens = [normalize(label).split() for label in self.labels]
        shared = set.intersection(*(set(t) for t in tokens)) if len(tokens) > 1 else set()
        phrases = []
        for i, toks in enumerate(tokens):
            if self.descriptions and self.descriptions[i]:
                phrases.append(self.descriptions[i])
                continue
            kept = [t for t in toks if t not in shared] or toks
            phrases.append(" ".join(kept))
        return phrases
