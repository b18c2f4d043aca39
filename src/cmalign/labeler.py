"""A labelling job as one object: an annotator, a method around it, and the bank it learned.

:class:`Labeler` is what ``cmalign fit`` and ``cmalign annotate`` call, and what a library user
calls instead of them:

>>> import pathlib, tempfile
>>> from cmalign import EmbeddingAnnotator
>>> pref_texts = ["wake me at 7", "set an alarm for noon", "play some jazz", "next song please"]
>>> y = ["alarm", "alarm", "music", "music"]
>>> bank = pathlib.Path(tempfile.mkdtemp()) / "bank.json"
>>> labeler = Labeler(EmbeddingAnnotator()).fit(pref_texts, y)
>>> [p.name for p in labeler.save(bank)]   # the bank, and the method's fitted state beside it
['bank.json', 'bank.cm_best.npz']
>>> labeler = Labeler.load(bank, EmbeddingAnnotator())   # no refit
>>> for records in labeler.label(["alarm at six"]):      # per-item records, a chunk at a time
...     print(records[0].label, records[0].answer.label)
alarm alarm

The bank stays the readable JSON file it always was. What a method learned beyond it (the
combined model's weights, say) goes into ``<bank stem>.<method>.npz`` beside it, with the identity
of the bank, annotator, encoder and parameters it was fitted with; a state file that does not
match is not used (the method is fitted again from the bank's samples, and ``refit_reason`` says why).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from .annotators.base import Annotator
from .chat.backend import Plan
from .data.fields import Item
from .encoder import SentenceEncoder
from .errors import CmalignError, DataError
from .files import write_atomically
from .labels import LabelSet
from .method.bank import MemoryBank
from .method.base import Method, Record, StateError
from .method.registry import METHODS, RULES, default_method, make_method
from .chunks import batched
from .output import LabelledOutput, tally
from .process import trim_memory

log = logging.getLogger(__name__)
STATE_FORMAT = "cmalign-method-state"
# what a state file's arrays and values mean; the hyperparameters are in its identity (get_params)
STATE_VERSION = 3


class Engine(Protocol):
    """Labels chunks of items with a fitted labeller; yields each chunk with its records, in order."""

    def label(self, labeler: Labeler, chunks: Iterable[list[Item]]) -> Iterator[tuple[list[Item], list[Record]]]:
        ...


def state_path(bank_path: str | Path, method: str) -> Path:
    """Where a method's fitted state lives beside its bank: ``bank.json`` -> ``bank.cm_best.npz``."""
    bank_path = Path(bank_path)
    return bank_path.with_name(f"{bank_path.stem}.{method}.npz")


@dataclass(frozen=True)
class RunPlan:
    """What a run would send to a chat model, counted without sending anything."""

    model_id: str
    plan: Plan
    max_calls: int | None
    later: tuple[str, ...]   # requests that depend on the answers: bounded, not counted
    items: int

    encoding: Any = None     # an embeddings endpoint's plan (EmbeddingPlan), when the encoder is one
    encoder: str = ""

    def lines(self) -> list[str]:
        out = [self.plan.summary(self.model_id, self.max_calls)] if self.model_id else []
        if self.encoding is not None:
            out.append(self.encoding.summary(self.encoder, self.max_calls))
        if self.later and self.plan.requests:
            out.append(f"not counted, as they depend on the answers: {' and '.join(self.later)} "
                       f"(at most one of each per item: {self.items} items)")
        return out


class Labeler:
    """An annotator, a method around it (by registry name, default the best it can feed), and the
    memory bank learned from the user's preference samples.

    Parameters
    ----------
    annotator : Annotator
        Who answers: the embedded annotator, a local or served LLM with a prompt strategy.
    method : str, optional
        A name from :data:`cmalign.method.METHODS` (default: the best this annotator can feed).
    encoder : SentenceEncoder, optional
        The encoder the methods read texts through (default: the annotator's, else the default).
    chunk_size : int
        Items asked about and labelled at a time.

    Attributes
    ----------
    bank_ : MemoryBank
        What the user's labels say of the annotator's answers (set by :meth:`fit` or :meth:`load`).
    method_ : Method
        The fitted method.
    refit_reason : str or None
        After :meth:`load`: why the method was fitted again from the bank, or None.

    Examples
    --------
    A toy annotator says ``card arrival`` for every text that names a card; the user's labels
    teach the method where that answer is wrong:

    >>> from cmalign import Labeler
    >>> from cmalign.method.examples import CARD_TEXTS, CARD_Y, CardSayer, Words
    >>> labeler = Labeler(CardSayer(), "cm_remap", encoder=Words()).fit(CARD_TEXTS, CARD_Y)
    >>> labeler.label_set.labels
    ('card arrival', 'lost or stolen', 'exchange rate')
    >>> [(r.label, r.action) for chunk in labeler.label(["the rate please"]) for r in chunk]
    [('exchange rate', 'remap')]

    Saved and loaded again, it labels the same way:

    >>> import tempfile, pathlib
    >>> bank = pathlib.Path(tempfile.mkdtemp()) / "bank.json"
    >>> [p.name for p in labeler.save(bank)]
    ['bank.json']
    >>> Labeler.load(bank, CardSayer(), "cm_remap", encoder=Words()).records(["the rate please"])[0].label
    'exchange rate'
    """

    def __init__(self, annotator: Annotator, method: str | None = None, *, encoder: SentenceEncoder | None = None,
                 chunk_size: int = 2048) -> None:
        self.annotator = annotator
        self.method = method if method is not None else default_method(annotator)
        self.encoder = encoder
        self.chunk_size = chunk_size
        self._new_method()  # an unknown method or one this annotator cannot feed fails here, not later
        self.refit_reason: str | None = None
        self.pins_: dict[str, np.ndarray] = {}  # the vectors of the sample adapt() learned from
        self.adapted_ = 0  # how many items adapt() learned from

    def _new_method(self) -> Method:
        return make_method(self.method, self.annotator, self.encoder)

    @property
    def label_set(self) -> LabelSet:
        return self._bank().labels

    def _bank(self) -> MemoryBank:
        if not hasattr(self, "bank_"):
            raise CmalignError("this Labeler is not fitted yet: call fit() or Labeler.load() first")
        return self.bank_

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, texts: Sequence[str], y: Sequence[str], *, label_set: LabelSet | None = None,
            budget: str | None = None, seed: int | None = None) -> Labeler:
        """Ask the annotator about the preference samples once; build the bank; fit the method."""
        texts, y = list(texts), list(y)
        label_set = label_set if label_set is not None else LabelSet.of(y)
        self._new_method().check_cost(len(texts), len(label_set))  # before the annotator is asked anything
        answers = [answer for chunk in batched(texts, self.chunk_size)
                   for answer in self.annotator.annotate(chunk, label_set)]
        backend = self.annotator.backend
        if backend is not None and all(not a.raw for a in answers) and backend.rejected:
            raise CmalignError(f"{backend.model_id} refused every request about the {len(texts)} preference "
                               f"samples; the last refusal: {backend.last_rejection.removeprefix('rejected: ')}")
        method = self._new_method().fit(texts, y, label_set=label_set, answers=answers)
        # the method built the bank of these answers already (a baseline asks none and builds none)
        bank = replace(method.bank_, budget=budget, seed=seed) if method.bank_ is not None else MemoryBank.build(
            answers, y, label_set, annotator=self.annotator.identity, budget=budget, seed=seed, texts=texts)
        encoder = self.encoder if self.encoder is not None else method.encoder_
        bank = replace(bank, encoder=None if encoder is None else encoder.identity)
        method.bank_ = bank
        self.bank_, self.method_ = bank, method
        return self

    def save(self, path: str | Path) -> list[Path]:
        """Write the bank (readable JSON) and, where the method learned more, its state beside it,
        as one unit: the state's bytes are written first, the bank is written and renamed into
        place inside that write, and the state renamed last. A failure while writing either leaves
        the old bank and the old state as they were; the one later step that can fail (the state's
        rename) leaves a new bank beside an old state, whose identity names another bank, so it
        is refitted, never misread."""
        path = Path(path)
        bank = self._bank()
        arrays, values = self.method_.state()
        if not (arrays or values):
            bank.save(path)
            return [path]
        meta = {"format": STATE_FORMAT, "version": STATE_VERSION, **self._identity(self.method_), "values": values}
        target = state_path(path, self.method)

        def write(handle: BinaryIO) -> None:
            np.savez(handle, __meta__=np.array(json.dumps(meta)), **arrays)
            bank.save(path)

        write_atomically(target, write, sidecar=True)
        return [path, target]

    def _identity(self, method: Method) -> dict[str, Any]:
        """What a saved state must agree with to be used again: the method's class and every
        hyperparameter (``get_params``), the bank, the annotator and the encoder."""
        params = {name: _plain(value) for name, value in method.get_params(deep=False).items()
                  if name not in ("annotator", "encoder")}
        encoder = method._encoder() if method.uses_encoder else None
        return {"method": self.method, "class": type(method).__name__, "params": params,
                "bank": self._bank().digest(), "annotator": self.annotator.identity,
                "encoder": None if encoder is None else encoder.identity}

    @classmethod
    def load(cls, path: str | Path, annotator: Annotator, method: str | None = None, *,
             encoder: SentenceEncoder | None = None, chunk_size: int = 2048, bank: MemoryBank | None = None) -> Labeler:
        """The bank at ``path`` with ``method``: its saved state where it matches, else fitted again
        from the bank (the CM rules need nothing but the bank). ``bank`` is the bank at ``path``
        when the caller has read it already."""
        labeler = cls(annotator, method, encoder=encoder, chunk_size=chunk_size)
        bank = bank if bank is not None else MemoryBank.load(path)
        if encoder is not None:  # before the annotator: the embedded one is named after its encoder
            bank.check_encoder(encoder.identity, path)
        bank.check_annotator(annotator)
        if labeler.method in METHODS and METHODS[labeler.method].needs_samples and not bank.samples:
            raise DataError(f"{{=method}} {labeler.method} needs the preference samples, and this bank holds "
                            "only counts; refit it with 'cmalign fit' or use {=method} cm_remap", path)
        labeler.bank_ = bank
        method = labeler._new_method()
        if method.bank_is_enough:
            labeler.method_ = method.fit_bank(bank)
            return labeler
        saved = state_path(path, labeler.method)
        reason = "no saved state"
        if saved.exists():
            reason = labeler._restore(method, saved)
            if reason is None:
                return labeler
        labeler.method_ = method.fit_bank(bank)
        labeler.refit_reason = f"{saved.name}: {reason}"
        return labeler

    def portable(self) -> tuple[MemoryBank, dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
        """The bank, the method's fitted state and the vectors of the sample it learned from, to
        rebuild this labeller elsewhere with :meth:`rebuilt` (a Ray worker) without fitting again."""
        arrays, values = self.method_.state()
        return self._bank(), arrays, values, self.pins_

    @classmethod
    def rebuilt(cls, annotator: Annotator, method: str, bank: MemoryBank, arrays: dict[str, np.ndarray],
                values: dict[str, Any], pins: dict[str, np.ndarray] | None = None, *,
                encoder: SentenceEncoder | None = None, chunk_size: int = 2048) -> Labeler:
        """A labeller from what :meth:`portable` gave: the same labels as the one it came from."""
        labeler = cls(annotator, method, encoder=encoder, chunk_size=chunk_size)
        labeler.bank_ = bank
        fresh = labeler._new_method()
        labeler.method_ = fresh.fit_bank(bank) if fresh.bank_is_enough else fresh.restore(bank, arrays, values)
        labeler.pins_ = dict(pins or {})
        return labeler

    def _restore(self, method: Method, saved: Path) -> str | None:
        """Set ``method_`` from a state file; None if done, else why it could not be used (a
        damaged file is also logged as a warning: the method is fitted again)."""
        reason = self._state_problem(method, saved)
        if reason is not None and reason.startswith(("unreadable", "damaged")):
            log.warning("%s: %s; %s is fitted again from the bank", saved, reason, self.method)
        return reason

    def _state_problem(self, method: Method, saved: Path) -> str | None:
        try:
            with np.load(saved, allow_pickle=False) as data:
                if "__meta__" not in data.files:
                    return "unreadable (no __meta__)"
                meta = json.loads(str(data["__meta__"][()]), parse_constant=_refuse_constant)
                arrays = {name: data[name] for name in data.files if name != "__meta__"}
        # any failure to parse a file from disk (a cut, a flipped byte, a zip of something else:
        # zipfile, numpy and json each raise their own) means the same: it cannot be used
        except Exception as exc:
            return f"unreadable ({type(exc).__name__})"
        if not isinstance(meta, dict) or not isinstance(meta.get("values"), dict):
            return "damaged (its meta is not the record cmalign writes)"
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            return "not a state file this cmalign reads"
        differs = [key for key, value in self._identity(method).items() if meta.get(key) != value]
        if differs:
            return f"saved for another {differs[0]}"
        try:
            self.method_ = method.restore(self.bank_, arrays, meta["values"])
        except StateError as exc:
            return f"damaged ({exc})"
        return None

    # -- learning from the corpus ----------------------------------------------------------------

    def adapt(self, items: Iterable[Item], total: int, size: int) -> int:
        """Let a transductive method (``cm_best``) learn from a seeded sample of ``size`` of the
        ``total`` items about to be labelled, read in one streaming pass (the same items, hence the
        same model, on a resumed run). Returns how many it learned from (0: the method does not)."""
        self.adapted_, self.pins_ = 0, {}
        if not self.method_.transductive or size < 1 or total < 1:
            return 0
        limit = self.method_.sample_limit
        size = min(size, total, size if limit is None else limit)  # never read more than it uses
        keep = np.sort(np.random.default_rng(0).choice(total, size=size, replace=False))
        texts: list[str] = []
        for i, item in enumerate(items):
            if i == keep[len(texts)]:
                texts.append(item.text)
                if len(texts) == size:
                    break  # the rest of the file is not needed
        encoder = self.method_.encoder_
        if encoder is None:
            self.method_.adapt(texts)
        else:
            with encoder.passing():  # encoded apart from any chunk, once: the labelling reuses them
                self.method_.adapt(texts)
                self.pins_ = dict(zip(texts, encoder.encode(texts)))
        self.adapted_ = len(texts)
        return len(texts)

    # -- labelling -----------------------------------------------------------------------------

    def label(self, texts: Iterable[str]) -> Iterator[list[Record]]:
        """The method's record for each text, a chunk of ``chunk_size`` at a time, in order."""
        self._bank()
        for chunk in batched(texts, self.chunk_size):
            yield self.records(chunk)

    def records(self, texts: list[str]) -> list[Record]:
        """The method's record for each of ``texts`` (one chunk), the sample :meth:`adapt` read
        taking the vectors it was encoded with there (see :meth:`SentenceEncoder.pinned`)."""
        encoder = self.method_.encoder_
        with encoder.pinned(self.pins_) if self.pins_ and encoder is not None else contextlib.nullcontext():
            return self.method_.records(texts)

    def label_into(self, output: LabelledOutput, items: Iterable[Item], *, input_path: str | Path | None = None,
                   progress: Callable[[int], object] = lambda n: None,
                   resumed: Callable[[int], object] = lambda n: None,
                   engine: Engine | None = None) -> tuple[int, int, Counter[str]]:
        """Label ``items`` (any iterable: a file is streamed, a chunk in memory at a time) into a
        claimed ``output``, after the ones an earlier run of the same bank, annotator and method
        left there (resumed). ``engine`` labels the chunks elsewhere (e.g.
        :class:`cmalign.engine.RayEngine`); the output is the same line for line. Returns (items
        kept, items labelled, how often each outcome occurred); ``progress(n)`` is called as ``n``
        more are labelled, ``resumed(n)`` once with the number an earlier run had done."""
        run = {"bank": self._bank().digest(), "annotator": self.annotator.identity, "method": self.method,
               "adapt": self.adapted_ if self.method_.transductive else None,
               "input": None if input_path is None else str(Path(input_path).resolve())}
        items = iter(items)
        done = output.start(items, run)
        resumed(done)
        chunks = batched(items, self.chunk_size)
        labelled = engine.label(self, chunks) if engine is not None else \
            ((chunk, self.records([i.text for i in chunk])) for chunk in chunks)
        outcomes: Counter[str] = Counter()
        n = 0
        for chunk, records in labelled:
            output.write(chunk, records, self.method)
            trim_memory()  # memory stays flat however many chunks follow
            tally(outcomes, records)
            n += len(chunk)
            progress(len(chunk))
        output.finish()
        return done, n, outcomes

    def plan(self, texts: Iterable[str], *, label_set: LabelSet | None = None) -> RunPlan:
        """Count what labelling ``texts`` would send, sending nothing. Before :meth:`fit` (to plan the
        fit itself) pass the ``label_set``; after, the bank's is used and CM re-asks are bounded."""
        backend = self.annotator.backend
        embedder = self.encoder.embedder if self.encoder is not None else None
        with embedder.dry() if embedder is not None else contextlib.nullcontext() as encoding:
            if backend is None and encoding is None:
                raise CmalignError("a dry run counts requests to a model (hf:PATH, openai:MODEL, openai-score:MODEL "
                                   f"or an openai-embed: encoder); {self.annotator.identity} sends none")
            fitted = label_set is None
            label_set = label_set if label_set is not None else self.label_set
            n = 0
            with backend.dry() if backend is not None else contextlib.nullcontext(Plan()) as plan:
                for chunk in batched(texts, self.chunk_size):
                    self.annotator.annotate(chunk, label_set)
                    n += len(chunk)
        later = []
        if self.annotator.strategy == "refine":
            later.append("a revision for each item the model judges wrong")
        if fitted and self.method in RULES:
            later.append(f"a re-ask for each item whose answer has several candidates ({self.method})")
        max_calls = backend.max_calls if backend is not None else getattr(embedder, "max_calls", None)
        return RunPlan(backend.model_id if backend is not None else "", replace(plan), max_calls, tuple(later), n,
                       None if encoding is None else replace(encoding), embedder.where if encoding else "")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a state file holds")


def _plain(value: Any) -> Any:
    """A parameter as a state file records it: plain JSON values as they are, anything else by repr."""
    value = value.value if isinstance(value, Enum) else value
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)
