"""The one protocol every method follows, and the per-item record it gives.

Every method, from the annotator alone to the combined model and the baselines, is a
meta-estimator in the scikit-learn sense:

- it is a :class:`sklearn.base.BaseEstimator`: every hyperparameter is an ``__init__`` argument
  that ``__init__`` only stores, so ``get_params``, ``set_params``, ``sklearn.base.clone`` and the
  printed form are scikit-learn's, and ``fit`` checks them (:class:`Number`) before any work;
- ``fit(texts, y, *, label_set=None, answers=None)`` learns from the user's preference samples;
  ``answers`` may hold the annotator's answers on ``texts`` already made, so work is shared;
- ``adapt(texts, *, answers=None)`` lets a transductive method learn from the unlabelled texts it
  is about to label (``cm_best``); for the others it changes nothing;
- ``predict``, ``predict_proba`` (columns in ``classes_`` order) and ``records`` (one
  :class:`Record` per item: label, confidence or action, candidates, the annotator's answer)
  label new texts, again taking ``answers=``;
- everything learned is set in ``fit`` and ends in ``_``; using an unfitted method is one clear
  :class:`NotFittedError`; what a state file keeps of it is declared (``_state_arrays``,
  ``_state_values``) and checked on :meth:`Method.restore`, so a damaged file is refused, never
  read into NaN labels.

Subclasses implement ``_fit`` and one of ``_proba`` (methods with probabilities; records follow
from them) or ``_records`` (the CM rules; their probabilities are the decision, one-hot).
"""

from __future__ import annotations

import json
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from ..annotators.base import Annotation, Annotator
from ..annotators.embedding import EmbeddingAnnotator
from ..encoder import SentenceEncoder, default_encoder
from ..errors import CmalignError, DataError
from ..labels import LabelSet
from . import footprint
from .bank import MemoryBank

if TYPE_CHECKING:
    from typing import Self


class NotFittedError(CmalignError, AttributeError):
    """A method was asked to label before it was fitted."""


class InvalidParameterError(CmalignError, ValueError):
    """A hyperparameter is out of its bounds (a ValueError, as scikit-learn's is)."""


@dataclass(frozen=True)
class Record:
    """What a method did with one item.

    ``confidence`` is the method's probability for ``label`` (methods with probabilities);
    ``action`` says what a CM rule did (``keep``, ``unseen``, ``remap``, ``reask``,
    ``reask-invalid``); ``candidates`` are the user's labels for the annotator's answer (the bank
    row, most frequent first); ``answer`` is the annotator's answer, None for methods that ask none.
    """

    label: str | None
    confidence: float | None = None
    action: str | None = None
    candidates: tuple[str, ...] = ()
    answer: Annotation | None = None

    def to_json(self, method: str | None = None) -> dict:
        """The record's fields as an ``annotate`` output line writes them, naming ``method``."""
        out: dict[str, Any] = {}
        if self.answer is not None:
            out |= {"annotator_answer": self.answer.raw, "annotator_label": self.answer.label,
                    "candidates": list(self.candidates)}
        if method is not None:
            out["method"] = method
        if self.action is not None:
            out["action"] = self.action
        out["label"] = self.label
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 4)
        return out


class Method(BaseEstimator, ABC):
    """Base class of every method; see the module docstring for the protocol.

    Class attributes say what a method needs: ``uses_annotator`` (it asks the annotator about
    each text). Every method takes every annotator: one without scores is read through its answers
    (:func:`cmalign.method.evidence.answer_distribution`).
    """

    uses_annotator: ClassVar[bool] = True
    uses_encoder: ClassVar[bool] = False  # it reads texts through a sentence encoder (``encoder_``)
    bank_is_enough: ClassVar[bool] = False  # all it learns is the bank (the CM rules)
    transductive: ClassVar[bool] = False  # it also learns from the unlabelled texts it will label (adapt)
    # fitted attributes not saved in a state file: restored from the bank and the arguments
    _derived: ClassVar[frozenset[str]] = frozenset({"bank_", "label_set_", "classes_", "encoder_"})
    # what fit checks of the hyperparameters, by name (subclasses extend it)
    _constraints: ClassVar[dict[str, Number | Choice]] = {}
    # what a state file holds of the fitted attributes: arrays by shape and kind, other values by kind
    _state_arrays: ClassVar[dict[str, Array]] = {}
    _state_values: ClassVar[dict[str, Value]] = {}

    # a method without these arguments has none: declared so that every method can be asked
    annotator: Annotator | None = None
    encoder: SentenceEncoder | None = None
    # set by fit and restore (None where the method reads no texts through an encoder)
    encoder_: SentenceEncoder | None = None

    @property
    def sample_limit(self) -> int | None:
        """The most unlabelled texts :meth:`adapt` learns from (None: no limit, or it learns nothing)."""
        return None

    def _check_params(self) -> None:
        """One :class:`InvalidParameterError` naming the first hyperparameter out of its bounds."""
        for name, constraint in self._constraints.items():
            value = getattr(self, name)
            if not constraint.fits(value):
                raise InvalidParameterError(f"{{={name}}} {value!r}: must be {constraint.describe()}")

    # -- fitting -------------------------------------------------------------------------------

    @property
    def gives_probabilities(self) -> bool:
        """Whether ``predict_proba`` is a probability worth calibrating, not a decision (the rules)."""
        return True

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "label_set_")

    def __sklearn_is_fitted__(self) -> bool:  # scikit-learn's check_is_fitted asks this
        return self.is_fitted

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(texts, y) first")

    def _check_annotator(self) -> None:
        if self.uses_annotator and self.annotator is None:
            raise CmalignError(f"{type(self).__name__} needs an annotator: {type(self).__name__}(annotator, ...)")

    def _encoder(self) -> SentenceEncoder:
        """The sentence encoder the method uses: the one given, else the annotator's, else the default."""
        if self.encoder is not None:
            return self.encoder
        if isinstance(self.annotator, EmbeddingAnnotator):
            return self.annotator.encoder
        return default_encoder()

    def fit(self, texts: Sequence[str], y: Sequence[str], *, label_set: LabelSet | None = None,
            answers: Sequence[Annotation] | None = None) -> Self:
        """Learn from the preference samples: ``texts`` and the user's label ``y`` of each.

        ``label_set`` defaults to the labels in ``y``. ``answers`` may hold the annotator's
        answers on ``texts`` already made; they are used instead of asking again.
        """
        self._check_params()
        texts, y = list(texts), list(y)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts for {len(y)} labels")
        if not texts:
            raise DataError("no preference samples to fit on")
        self._check_annotator()
        inferred = label_set is None
        label_set = LabelSet.of(y) if inferred else label_set
        unknown = next((label for label in y if label not in label_set), None)
        if unknown is not None:
            raise DataError(f"preference label {unknown!r} is not in the label set")
        if len(set(y)) < 2:
            raise DataError(f"all {len(y)} preference samples have the label {y[0]!r}: to learn how this user "
                            "labels, the samples need at least two labels")
        if answers is not None and len(answers) != len(texts):
            raise ValueError(f"{len(answers)} answers for {len(texts)} texts")
        self.check_cost(len(texts), len(label_set))
        if self.uses_annotator and answers is None:
            answers = self.annotator.annotate(texts, label_set)
        if inferred and answers is not None and _answers_from_a_larger_set(answers, label_set):
            warnings.warn(f"the label set was inferred from y ({len(label_set)} labels) but the annotator "
                          "was given a larger one; pass label_set= so that both use the same labels",
                          stacklevel=2)
        self.label_set_ = label_set
        self.classes_ = label_set.labels
        # every method that asks the annotator keeps the bank of its answers
        self.bank_ = MemoryBank.build(answers, y, label_set, annotator=self.annotator.identity, texts=texts) \
            if self.uses_annotator else None
        self.encoder_ = self._encoder() if self.uses_encoder else None
        self._fit(texts, np.array([label_set.index(label) for label in y]), answers)
        return self

    @abstractmethod
    def _fit(self, texts: list[str], y: np.ndarray, answers: Sequence[Annotation] | None) -> None:
        """Fit on the preference samples (``y`` as indices into ``label_set_``)."""

    def fit_bank(self, bank: MemoryBank) -> Self:
        """Fit from a bank saved earlier: the bank itself where that is all the method learns,
        else the preference samples it holds (asking the annotator about them again)."""
        self._check_annotator()
        if self.uses_annotator:
            bank.check_annotator(self.annotator)
        if self.bank_is_enough:
            return self.restore(bank, {}, {})
        if not bank.samples:
            raise DataError(f"{type(self).__name__} needs the preference samples, and this bank holds "
                            "only counts; refit it with 'cmalign fit'")
        self.fit([s.text for s in bank.samples], [s.label for s in bank.samples], label_set=bank.labels)
        self.bank_ = bank
        return self

    def adapt(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None) -> Self:
        """Learn from the unlabelled texts about to be labelled (the corpus, or a sample of it) where
        the method can (``transductive``); otherwise nothing changes. Calling it again replaces
        what an earlier corpus taught. ``answers`` as in :meth:`fit`."""
        self._check_fitted()
        if self.transductive:
            texts = list(texts)
            self.check_cost(0, len(self.classes_), n_corpus=len(texts))
            self._adapt(texts, self._answers(texts, answers))
        return self

    def cost(self, n_samples: int, n_labels: int, n_corpus: int = 0) -> footprint.Footprint | None:
        """The estimated peak memory and time of fitting on ``n_samples`` of ``n_labels`` labels
        (and adapting to ``n_corpus`` items); None where it stays small whatever the sizes."""
        return None

    def check_cost(self, n_samples: int, n_labels: int, n_corpus: int = 0) -> None:
        """Refuse a fit (or adapt) that cannot fit in this machine's memory, before anything is
        asked or computed; warn about one that takes long (:mod:`cmalign.method.footprint`)."""
        estimate = self.cost(n_samples, n_labels, n_corpus)
        if estimate is not None:
            what = (f"fitting {type(self).__name__} on {n_samples} preference samples of {n_labels} labels"
                    if n_samples else f"adapting {type(self).__name__} to {n_corpus} items of {n_labels} labels")
            footprint.check(what, estimate)

    def _adapt(self, texts: list[str], answers: Sequence[Annotation] | None) -> None:
        """Learn from unlabelled ``texts`` (transductive methods implement it)."""
        raise NotImplementedError

    # -- labelling -----------------------------------------------------------------------------

    def _answers(self, texts: Sequence[str], answers: Sequence[Annotation] | None) -> Sequence[Annotation] | None:
        self._check_fitted()
        if answers is not None:
            if len(answers) != len(texts):
                raise ValueError(f"{len(answers)} answers for {len(texts)} texts")
            return answers
        if not self.uses_annotator:
            return None
        self._check_annotator()
        return self.annotator.annotate(list(texts), self.label_set_)

    def predict_proba(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None) -> np.ndarray:
        """p(y|x), shape (texts, labels), columns in ``classes_`` order; the row's maximum is the
        item's confidence. For the CM rules it is their decision, one-hot (uniform where the rule
        gives no label)."""
        texts = list(texts)
        return self._proba(texts, self._answers(texts, answers))

    def records(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None) -> list[Record]:
        """Per text, what the method decided and why (see :class:`Record`)."""
        texts = list(texts)
        return self._records(texts, self._answers(texts, answers))

    def predict(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None) -> list[str | None]:
        """The label per text (None only where a CM rule keeps an answer outside the label set)."""
        return [r.label for r in self.records(texts, answers=answers)]

    def _proba(self, texts: list[str], answers: Sequence[Annotation] | None) -> np.ndarray:
        records = self._records(texts, answers)
        P = np.zeros((len(records), len(self.classes_)))
        for i, record in enumerate(records):
            if record.label is None:
                P[i] = 1.0 / len(self.classes_)
            else:
                P[i, self.label_set_.index(record.label)] = 1.0
        return P

    def _records(self, texts: list[str], answers: Sequence[Annotation] | None) -> list[Record]:
        P = self._proba(texts, answers)
        best = P.argmax(axis=1)
        bank = self.bank_
        return [Record(label=self.classes_[j], confidence=float(P[i, j]),
                       candidates=bank.candidates(answers[i].key) if answers is not None and bank else (),
                       answer=answers[i] if answers is not None else None)
                for i, j in enumerate(best)]

    # -- state files ---------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """What ``fit`` learned beyond the bank: (arrays, JSON-able values), for a state file."""
        self._check_fitted()
        arrays, values = {}, {}
        for name, value in vars(self).items():
            if not name.endswith("_") or name in self._derived:
                continue
            if isinstance(value, np.ndarray):
                arrays[name] = value
            else:
                value = value.item() if isinstance(value, np.generic) else value
                if _tuplify(json.loads(json.dumps(value))) != value:
                    raise TypeError(f"{type(self).__name__}.{name} cannot be saved as JSON: {value!r}")
                values[name] = value
        return arrays, values

    def restore(self, bank: MemoryBank, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> Self:
        """Set the fitted state saved by :meth:`state`; the label set and bank come from ``bank``.
        A state that is not what this method saves (a name missing or unknown, an array of another
        shape or kind, a NaN) is a :class:`StateError`, and nothing is set."""
        self._check_annotator()
        self._check_state(len(bank.labels), arrays, values)
        self.label_set_ = bank.labels
        self.classes_ = bank.labels.labels
        self.bank_ = bank
        self.encoder_ = self._encoder() if self.uses_encoder else None
        for name, value in arrays.items():
            setattr(self, name, value)
        for name, value in values.items():
            setattr(self, name, _tuplify(value))
        return self

    def _fixed_dims(self, labels: int) -> dict[str, int]:
        """The sizes a state's dimensions must have whatever was fitted (``labels``: the bank's)."""
        return {"labels": labels}

    def _check_state(self, labels: int, arrays: dict[str, Any], values: dict[str, Any]) -> None:
        """Raise :class:`StateError` unless ``arrays`` and ``values`` are what :meth:`state` gives."""
        for given, declared, what in ((arrays, self._state_arrays, "array"), (values, self._state_values, "value")):
            unknown = sorted(set(given) - set(declared))
            missing = [name for name, spec in declared.items() if name not in given and spec.required]
            if unknown or missing:
                raise StateError(f"holds no {what} {missing[0]}" if missing else
                                 f"holds {unknown[0]}, which {type(self).__name__} does not fit")
        dims = self._fixed_dims(labels)
        for name, spec in self._state_arrays.items():
            spec.check(name, arrays[name], dims, labels)
        for name, spec in self._state_values.items():
            if name in values and not spec.fits(values[name], dims):
                raise StateError(f"{name} is {values[name]!r}, not {spec.describe()}")


class StateError(DataError):
    """A state file's content is not what the method saves; the method is fitted again instead."""


@dataclass(frozen=True)
class Number:
    """A finite number from ``low`` to ``high`` (each excluded where ``above``, ``below``), a whole
    one where ``integer``, or None where ``optional``; with ``grid``, a non-empty tuple of them
    (the values a method chooses among). A hyperparameter's bounds, or a fitted value's; ``dim``
    names the state's dimension a fitted count must equal."""

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    grid: bool = False
    above: bool = False
    below: bool = False
    optional: bool = False
    required: bool = True
    dim: str | None = None

    def _one(self, v: Any) -> bool:
        if v is None:
            return self.optional
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            return False
        if self.integer and not isinstance(v, (int, np.integer)):
            return False
        return math.isfinite(v) and (v > self.low if self.above else v >= self.low) and \
            (v < self.high if self.below else v <= self.high)

    def fits(self, value: Any, dims: dict[str, int] | None = None) -> bool:
        if self.grid:
            return isinstance(value, (tuple, list)) and len(value) > 0 and all(self._one(v) for v in value)
        if self.dim is not None and dims is not None and dims.get(self.dim, value) != value:
            return False
        return self._one(value)

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        low = "" if self.low == -math.inf else f"above {self.low:g}" if self.above else f"at least {self.low:g}"
        high = "" if self.high == math.inf else f"below {self.high:g}" if self.below else f"at most {self.high:g}"
        bounds = "".join(f" {part}" for part in (low, "and" if low and high else "", high) if part)
        if self.grid:
            return f"a non-empty tuple of {kind.split(' ', 1)[1]}s{bounds}"
        return kind + bounds + (", or None" if self.optional else "")


@dataclass(frozen=True)
class Choice:
    """A hyperparameter that is one of ``options``."""

    options: tuple[Any, ...]

    def fits(self, value: Any, dims: dict[str, int] | None = None) -> bool:
        # True is not 1 here: a flag takes True or False, a count never a flag
        return any(value is option or (not isinstance(value, bool) and not isinstance(option, bool) and value == option)
                   for option in self.options)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


@dataclass(frozen=True)
class Finite:
    """A fitted value read as JSON (numbers, strings, None, lists and dicts of them) whose numbers are
    all finite; with ``fields``, a dict of at most those keys, each fitting its own spec."""

    fields: dict[str, Number] | None = None
    required: bool = True

    def fits(self, value: Any, dims: dict[str, int] | None = None) -> bool:
        if self.fields is not None:
            return isinstance(value, dict) and all(k in self.fields and self.fields[k].fits(v)
                                                   for k, v in value.items())
        return _finite(value)

    def describe(self) -> str:
        if self.fields is not None:
            return "a dict of " + ", ".join(f"{k} ({spec.describe()})" for k, spec in self.fields.items())
        return "a value whose numbers are finite"


Value = Number | Finite


@dataclass(frozen=True)
class Array:
    """A fitted array: its dimensions by name (``labels`` is the bank's label count, and any name
    is one length wherever it appears) and what it holds: ``real`` (finite floats), ``score``
    (floats, and -inf for a label never seen), ``label`` (indices into the label set) or
    ``answer`` (as ``label``, or -1: an answer outside the set)."""

    shape: tuple[str, ...]
    kind: str = "real"
    required: bool = True

    def check(self, name: str, a: Any, dims: dict[str, int], labels: int) -> None:
        if not isinstance(a, np.ndarray):
            raise StateError(f"{name} is not an array")
        if a.ndim != len(self.shape):
            raise StateError(f"{name} has shape {a.shape}, not ({', '.join(self.shape)})")
        for size, dim in zip(a.shape, self.shape):
            if dims.setdefault(dim, size) != size:
                raise StateError(f"{name} has shape {a.shape}: its {dim} is {size}, elsewhere {dims[dim]}")
        if self.kind in ("real", "score"):
            if a.dtype.kind != "f":
                raise StateError(f"{name} holds {a.dtype}, not floats")
            bad = ~np.isfinite(a) if self.kind == "real" else np.isnan(a) | (a == np.inf)
            if bad.any():
                raise StateError(f"{name} holds {'NaN or infinite values' if self.kind == 'real' else 'NaN'}")
        else:
            if a.dtype.kind not in "iu":
                raise StateError(f"{name} holds {a.dtype}, not label indices")
            low = -1 if self.kind == "answer" else 0
            if a.size and (a.min() < low or a.max() >= labels):
                raise StateError(f"{name} holds an index outside the {labels} labels")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _finite(v) for k, v in value.items())
    return value is None or isinstance(value, (str, int))


def _tuplify(value: Any) -> Any:
    """JSON gives lists back: fitted attributes keep tuples, so compare and restore as tuples."""
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuplify(v) for k, v in value.items()}
    return value


def _answers_from_a_larger_set(answers: Sequence[Annotation], label_set: LabelSet) -> bool:
    return any((a.label is not None and a.label not in label_set)
               or (a.scores is not None and len(a.scores) != len(label_set)) for a in answers)
