"""The one protocol every method follows, and the per-item record it gives.

Every method, from the annotator alone to the combined model and the baselines, is a
meta-estimator in the scikit-learn sense:

- ``__init__`` only stores its arguments, so ``get_params``, ``set_params`` and
  ``sklearn.base.clone`` work (without scikit-learn being needed here);
- ``fit(texts, y, *, label_set=None, answers=None)`` learns from the user's preference samples;
  ``answers`` may hold the annotator's answers on ``texts`` already made, so work is shared;
- ``adapt(texts, *, answers=None)`` lets a transductive method learn from the unlabelled texts it
  is about to label (``cm_best``); for the others it changes nothing;
- ``predict``, ``predict_proba`` (columns in ``classes_`` order) and ``records`` (one
  :class:`Record` per item: label, confidence or action, candidates, the annotator's answer)
  label new texts, again taking ``answers=``;
- everything learned is set in ``fit`` and ends in ``_``; using an unfitted method is one clear
  :class:`NotFittedError`.

Subclasses implement ``_fit`` and one of ``_proba`` (methods with probabilities; records follow
from them) or ``_records`` (the CM rules; their probabilities are the decision, one-hot).
"""

from __future__ import annotations

import inspect
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..annotators.base import Annotation
from ..encoder import SentenceEncoder, default_encoder
from ..errors import CmalignError, DataError
from ..labels import LabelSet
from .bank import MemoryBank

if TYPE_CHECKING:
    from typing import Self


class NotFittedError(CmalignError, AttributeError):
    """A method was asked to label before it was fitted."""


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


class Method(ABC):
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

    # -- parameters (scikit-learn's conventions) -------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        known = self._param_names()
        for name, value in params.items():
            if name not in known:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; parameters: {', '.join(known)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [f"{name}={value!r}" for name, value in self.get_params().items()
                 if defaults.get(name, inspect.Parameter.empty) is inspect.Parameter.empty
                 or not _same(value, defaults[name])]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- fitting -------------------------------------------------------------------------------

    @property
    def gives_probabilities(self) -> bool:
        """Whether ``predict_proba`` is a probability worth calibrating, not a decision (the rules)."""
        return True

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "label_set_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(texts, y) first")

    def _check_annotator(self) -> None:
        annotator = getattr(self, "annotator", None)
        if not self.uses_annotator:
            return
        if annotator is None:
            raise CmalignError(f"{type(self).__name__} needs an annotator: {type(self).__name__}(annotator, ...)")

    def _encoder(self) -> SentenceEncoder:
        """The sentence encoder the method uses: the one given, else the annotator's, else the default."""
        given = getattr(self, "encoder", None)
        if given is not None:
            return given
        annotator_encoder = getattr(getattr(self, "annotator", None), "encoder", None)
        return annotator_encoder if isinstance(annotator_encoder, SentenceEncoder) else default_encoder()

    def fit(self, texts: Sequence[str], y: Sequence[str], *, label_set: LabelSet | None = None,
            answers: Sequence[Annotation] | None = None) -> Self:
        """Learn from the preference samples: ``texts`` and the user's label ``y`` of each.

        ``label_set`` defaults to the labels in ``y``. ``answers`` may hold the annotator's
        answers on ``texts`` already made; they are used instead of asking again.
        """
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
        if self.uses_annotator and answers is None:
            answers = self.annotator.annotate(texts, label_set)
        if inferred and answers is not None and _answers_from_a_larger_set(answers, label_set):
            warnings.warn(f"the label set was inferred from y ({len(label_set)} labels) but the annotator "
                          "was given a larger one; pass label_set= so that both use the same labels",
                          stacklevel=2)
        self.label_set_ = label_set
        self.classes_ = label_set.labels
        if self.uses_annotator:  # every method that asks the annotator keeps the bank of its answers
            self.bank_ = MemoryBank.build(answers, y, label_set, annotator=self.annotator.identity, texts=texts)
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
            self._adapt(texts, self._answers(texts, answers))
        return self

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
        bank = getattr(self, "bank_", None)
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
        """Set the fitted state saved by :meth:`state`; the label set and bank come from ``bank``."""
        self._check_annotator()
        self.label_set_ = bank.labels
        self.classes_ = bank.labels.labels
        self.bank_ = bank
        self.encoder_ = self._encoder() if self.uses_encoder else None
        for name, value in arrays.items():
            setattr(self, name, value)
        for name, value in values.items():
            setattr(self, name, _tuplify(value))
        return self


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and other objects without a plain truth value
        return a is b


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
