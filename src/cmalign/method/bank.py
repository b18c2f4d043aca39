"""The discrepancy memory bank: which labels the user meant when the annotator said ``r``.

Built once from the preference samples, it is an empirical transition table from the
annotator's (normalised) responses to the user's labels. The paper keeps only the set of labels
per response; the counts are kept here too, since the set is just their support and the counts
order the candidates and carry the evidence that later variants weigh.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..annotators.base import Annotation, Annotator
from ..data.fields import decode_json
from ..errors import DataError
from ..files import write_atomically
from ..labels import LabelSet

FORMAT = "cmalign-memory-bank"
VERSION = 1


@dataclass(frozen=True)
class BankEntry:
    """For one response key: the user's labels and how often, most frequent first."""

    response: str
    in_label_set: bool
    counts: tuple[tuple[str, int], ...]

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.counts)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True)
class PreferenceSample:
    """One of the user's labelled items, with the annotator's answer key for it."""

    text: str
    label: str
    answer: str


@dataclass(frozen=True)
class MemoryBank:
    """Response key -> counts of the user's labels, with what it was fitted on.

    Examples
    --------
    An annotator that says ``weather`` for every alarm request, and a user who meant ``alarm``:

    >>> from cmalign.labels import LabelSet
    >>> from cmalign.method.examples import Swapper
    >>> labels = LabelSet(("alarm", "music", "weather"))
    >>> texts = ["set an alarm", "alarm at 7", "will it rain", "play jazz"]
    >>> annotations = Swapper().annotate(texts, labels)
    >>> bank = MemoryBank.build(annotations, ["alarm", "alarm", "weather", "music"], labels, annotator="swapper")
    >>> bank.candidates("weather"), bank.candidates("alarm"), bank.candidates("never said")
    (('alarm',), ('weather',), ())
    """

    labels: LabelSet
    annotator: str
    entries: Mapping[str, BankEntry]
    n_samples: int
    budget: str | None = None
    seed: int | None = None
    # the preference samples themselves, kept so that the score-based variants (which need the
    # texts, not just the counts) can be fitted from a bank file; empty when not stored
    samples: tuple[PreferenceSample, ...] = ()
    # the sentence encoder the bank's method read the texts through (its identity); None: not recorded
    encoder: str | None = None

    @classmethod
    def build(cls, annotations: Sequence[Annotation], user_labels: Sequence[str], labels: LabelSet, *,
              annotator: str, budget: str | None = None, seed: int | None = None,
              texts: Sequence[str] | None = None) -> MemoryBank:
        """Count (answer key -> user label); with ``texts``, keep the samples in the bank too."""
        if len(annotations) != len(user_labels) or (texts is not None and len(texts) != len(user_labels)):
            raise ValueError("annotations, labels and texts differ in length")
        if not annotations:
            raise DataError("no preference samples to fit the memory bank on")
        table: dict[str, Counter[str]] = {}
        for answer, truth in zip(annotations, user_labels):
            if truth not in labels:
                raise DataError(f"preference label {truth!r} is not in the label set")
            table.setdefault(answer.key, Counter())[truth] += 1
        entries = {key: cls._entry(key, counts, labels) for key, counts in table.items()}
        samples = () if texts is None else tuple(
            PreferenceSample(t, y, a.key) for t, y, a in zip(texts, user_labels, annotations))
        return cls(labels=labels, annotator=annotator, entries=cls._ordered(entries, labels),
                   n_samples=len(annotations), budget=budget, seed=seed, samples=samples)

    @staticmethod
    def _entry(key: str, counts: Mapping[str, int], labels: LabelSet) -> BankEntry:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], labels.index(kv[0])))
        return BankEntry(response=key, in_label_set=key in labels, counts=tuple(ranked))

    @staticmethod
    def _ordered(entries: dict[str, BankEntry], labels: LabelSet) -> dict[str, BankEntry]:
        # in-set responses in label order, then out-of-set ones alphabetically: a stable, readable file
        return dict(sorted(entries.items(),
                           key=lambda kv: (0, labels.index(kv[0]), "") if kv[0] in labels else (1, 0, kv[0])))

    def describe(self) -> str:
        """One line on what the bank holds, what the cm rules will do with it, and which labels no
        preference sample has (the user's labels teach nothing about those)."""
        entries = self.entries.values()
        reask = sum(len(e.counts) >= 2 for e in entries)
        remap = sum(len(e.counts) == 1 and e.candidates[0] != e.response for e in entries)
        seen = {label for e in entries for label in e.candidates}
        unseen = [label for label in self.labels.labels if label not in seen]
        gap = "" if not unseen else (f"; no preference sample has {len(unseen)} of the {len(self.labels)} labels "
                                     f"({', '.join(unseen[:5])}{', ...' if len(unseen) > 5 else ''})")
        return f"{len(entries)} distinct answers; the cm rules re-ask within {reask} of them and remap {remap}{gap}"

    def check_annotator(self, annotator: Annotator) -> None:
        """A bank is only ever applied to answers from the annotator it was fitted with."""
        if self.annotator != annotator.identity:
            raise DataError(f"the memory bank was fitted with annotator {self.annotator!r}, "
                            f"not {annotator.identity!r}: use the annotator it was fitted with "
                            "(the same {=annotator} as for 'fit')")

    def check_encoder(self, encoder: str, path: str | Path) -> None:
        """A bank is only ever used with the sentence encoder it was fitted with (``encoder``: its identity)."""
        if self.encoder is not None and self.encoder != encoder:
            raise DataError(f"the bank was fitted with encoder {self.encoder!r}, not {encoder!r}: use the "
                            "{=encoder} it was fitted with, or fit it again with this one", path)

    def check_label_set(self, given: LabelSet, path: str | Path, source: str | Path) -> None:
        """A label set from ``source`` must be the bank's own (at ``path``), in the same order."""
        if given.labels != self.labels.labels:
            raise DataError(f"the bank was fitted on a different label set than {source} (only in the "
                            f"label file: {[l for l in given.labels if l not in self.labels][:3]}, only in the "
                            f"bank: {[l for l in self.labels.labels if l not in given][:3]})", path)

    def digest(self) -> str:
        """A hash of everything the bank holds: a method's saved state names the bank it came from."""
        text = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def lookup(self, key: str) -> BankEntry | None:
        return self.entries.get(key)

    def candidates(self, key: str) -> tuple[str, ...]:
        """The user's labels for response ``key``, most frequent first; empty if never seen."""
        entry = self.entries.get(key)
        return entry.candidates if entry is not None else ()

    # -- files ---------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "annotator": self.annotator,
            "n_samples": self.n_samples,
            "budget": self.budget,
            "seed": self.seed,
            "labels": list(self.labels.labels),
            "descriptions": list(self.labels.descriptions),
            "entries": [{"response": e.response, "in_label_set": e.in_label_set, "counts": dict(e.counts)}
                        for e in self.entries.values()],
            "samples": [{"text": s.text, "label": s.label, "answer": s.answer} for s in self.samples],
        } | ({} if self.encoder is None else {"encoder": self.encoder})

    def save(self, path: str | Path) -> None:
        """Write the bank as readable JSON (atomically: a crash never leaves half a bank)."""
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"
        write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path: str | Path) -> MemoryBank:
        """Read a bank written by :meth:`save`, checked field by field: every value of its declared
        type, numbers whole and finite, the counts those of the samples (when it keeps them) and
        adding up to ``n_samples``. A problem is one :class:`DataError` naming the file and the field."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError("no such file", path) from None
        except IsADirectoryError:
            raise DataError("is a folder, not a bank file", path) from None
        except OSError as exc:
            raise DataError(f"cannot read the bank ({exc.strerror})", path) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc.reason})", path, raw.count(b"\n", 0, exc.start) + 1) from None
        data = decode_json(text, path, finite=False)  # a non-finite number is named by its field below
        try:
            return _from_json(data, path)
        except DataError as exc:
            if exc.path is None:
                raise DataError(exc.problem, path) from None
            raise


def _shown(value: object) -> str:
    """A value as JSON spells it (``null``, ``Infinity``, ``"text"``), cut short for a message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value: object) -> bool:
    return type(value) is int


def _from_json(data: object, path: Path) -> MemoryBank:
    """The bank ``data`` (a decoded bank file) describes, or the DataError of its first wrong field."""
    def wrong(field: str, value: object, expected: str) -> DataError:
        return DataError(f"malformed memory bank: {field} is {_shown(value)}, not {expected}", path)

    def strings(field: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise wrong(field, value, "a list of strings")
        for n, element in enumerate(value):
            if not isinstance(element, str):
                raise wrong(f"{field}[{n}]", element, "a string")
        return tuple(value)

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"not a cmalign memory bank (no \"format\": \"{FORMAT}\")", path)
    if not _whole(data.get("version")) or data["version"] != VERSION:
        raise DataError(f"memory bank version {_shown(data.get('version'))}; this cmalign reads version {VERSION}",
                        path)
    for name in ("annotator", "n_samples", "labels", "entries"):
        if name not in data:
            raise DataError(f"malformed memory bank: no field {name!r}", path)
    annotator, n_samples = data["annotator"], data["n_samples"]
    if not isinstance(annotator, str) or not annotator:
        raise wrong("annotator", annotator, "the annotator's name")
    if not _whole(n_samples) or n_samples < 1:
        raise wrong("n_samples", n_samples, "a whole number of at least 1")
    budget, seed = data.get("budget"), data.get("seed")
    if budget is not None and not isinstance(budget, str):
        raise wrong("budget", budget, "a string or null")
    if seed is not None and not (_whole(seed) and seed >= 0):
        raise wrong("seed", seed, "a whole number from 0, or null")
    encoder = data.get("encoder")
    if encoder is not None and not (isinstance(encoder, str) and encoder):
        raise wrong("encoder", encoder, "the encoder's name or null")
    names = strings("labels", data["labels"])
    descriptions = strings("descriptions", data.get("descriptions") or [])
    if descriptions and len(descriptions) != len(names):
        raise DataError(f"malformed memory bank: {len(descriptions)} descriptions for {len(names)} labels "
                        "(one a label, or none)", path)
    labels = LabelSet(names, descriptions)

    if not isinstance(data["entries"], list):
        raise wrong("entries", data["entries"], "a list of entries")
    entries: dict[str, BankEntry] = {}
    for n, raw in enumerate(data["entries"]):
        if not isinstance(raw, dict):
            raise wrong(f"entries[{n}]", raw, "an entry (an object)")
        response, counts = raw.get("response"), raw.get("counts")
        if not isinstance(response, str):
            raise wrong(f"entries[{n}].response", response, "a string")
        if response in entries:
            raise DataError(f"malformed memory bank: entries[{n}].response {response!r} repeats an earlier entry",
                            path)
        if "in_label_set" in raw and raw["in_label_set"] is not (response in labels):
            raise wrong(f"entries[{n}].in_label_set", raw["in_label_set"], f"{_shown(response in labels)} "
                        f"(the response {'is' if response in labels else 'is not'} a label)")
        if not isinstance(counts, dict):
            raise wrong(f"entries[{n}].counts", counts, "an object of label: count")
        if not counts or any(k not in labels for k in counts):
            raise DataError(f"entry {response!r} has no counts or labels outside the bank's label set", path)
        if any(not _whole(v) or not 1 <= v <= n_samples for v in counts.values()):
            raise DataError(f"entry {response!r} has a count that is not a whole number from 1 to n_samples "
                            f"({n_samples})", path)
        entries[response] = MemoryBank._entry(response, counts, labels)
    if not entries:
        raise DataError("malformed memory bank: entries is empty", path)
    total = sum(entry.total for entry in entries.values())
    if total != n_samples:
        raise DataError(f"malformed memory bank: the entries' counts add up to {total}, but n_samples is "
                        f"{n_samples}", path)

    stored = data.get("samples") or []
    if not isinstance(stored, list):
        raise wrong("samples", stored, "a list of samples")
    samples = []
    for n, raw in enumerate(stored):
        if not isinstance(raw, dict):
            raise wrong(f"samples[{n}]", raw, "a sample (an object)")
        for name in ("text", "label", "answer"):
            if not isinstance(raw.get(name), str):
                raise wrong(f"samples[{n}].{name}", raw.get(name), "a string")
        if not raw["text"].strip():
            raise wrong(f"samples[{n}].text", raw["text"], "a text")
        samples.append(PreferenceSample(raw["text"], raw["label"], raw["answer"]))
    if any(s.label not in labels for s in samples):
        raise DataError("a stored preference sample has a label outside the bank's label set", path)
    if samples and len(samples) != n_samples:
        raise DataError(f"{len(samples)} stored samples but n_samples is {n_samples}", path)
    if samples:
        table: dict[str, Counter[str]] = {}
        for sample in samples:
            table.setdefault(sample.answer, Counter())[sample.label] += 1
        for response, entry in entries.items():
            if dict(entry.counts) != dict(table.get(response, {})):
                raise DataError(f"malformed memory bank: the counts of entry {response!r} "
                                f"({_shown(dict(entry.counts))}) are not those of the samples with that answer "
                                f"({_shown(dict(table.get(response, {})))})", path)
    return MemoryBank(labels=labels, annotator=annotator, entries=entries, n_samples=n_samples, budget=budget,
                      seed=seed, samples=tuple(samples), encoder=encoder)
