"""Consistent Marginalization: correct an annotator's answers with the user's memory bank.

:class:`ConsistentMarginalization` is a meta-estimator in the scikit-learn sense: it wraps an
annotator, learns the memory bank from the user's preference samples in :meth:`fit`, and labels
new texts in :meth:`predict`, asking the annotator again only where the bank says the answer is
ambiguous for this user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..annotators.base import Annotation, Annotator
from ..chunks import batched
from .bank import MemoryBank
from .base import Choice, Method, Number, Record


class Rule(str, Enum):
    """How a bank entry changes an answer.

    ``paper``: two or more candidates -> re-ask within them; otherwise keep the answer.
    ``remap``: as ``paper``, and a single candidate replaces the answer (the user always meant
    that label when the annotator said this).
    """

    PAPER = "paper"
    REMAP = "remap"


class Action(str, Enum):
    KEEP = "keep"          # one candidate and the paper rule, or the candidate equals the answer
    UNSEEN = "unseen"      # the response never occurred among the preference samples
    REMAP = "remap"        # replaced by the single candidate
    REASK = "reask"        # re-asked within the candidates, answer within them
    REASK_INVALID = "reask-invalid"  # re-ask answered outside the candidates: most frequent taken


@dataclass(frozen=True)
class Decision:
    """What CM did with one item: the annotator's answer, the candidates, and the final label."""

    answer: Annotation
    candidates: tuple[str, ...]
    action: Action
    label: str | None
    reask: Annotation | None = None


class ConsistentMarginalization(Method):
    """Wraps an annotator; ``fit`` learns the memory bank, ``predict`` labels new texts.

    Parameters
    ----------
    annotator : Annotator
        What is asked about each text, and asked again within the candidates.
    rule : Rule or str, default "remap"
        How a bank entry changes an answer (:class:`Rule`): ``paper`` re-asks where the user's
        labels for the answer are two or more; ``remap`` also replaces an answer the user always
        meant as one other label.
    batch_size : int, default 4096
        Texts re-asked in one call to the annotator.

    Attributes
    ----------
    bank_ : MemoryBank
        The memory bank: per answer, the labels the user meant by it.
    label_set_ : LabelSet
        The label set fitted on.
    classes_ : tuple of str
        Its labels.

    Examples
    --------
    A toy annotator that swaps two labels, and the user's labels that say so:

    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.annotators.base import ScoringAnnotator
    >>> from cmalign.method.examples import Swapper
    >>> labels = LabelSet(("alarm", "music", "weather"))
    >>> texts = ["set an alarm", "alarm at six", "will it rain", "play a song"]
    >>> y = ["alarm", "alarm", "weather", "music"]
    >>> cm = ConsistentMarginalization(Swapper(), rule="remap").fit(texts, y, label_set=labels)
    >>> cm.predict(["an alarm for seven", "rain later"])
    ['alarm', 'weather']
    >>> [d.action.value for d in cm.decide(["an alarm for seven"])]
    ['remap']
    >>> cm.set_params(rule="paper").predict(["an alarm for seven"])
    ['weather']
    """

    def __init__(self, annotator: Annotator | None, *, rule: Rule | str = Rule.REMAP, batch_size: int = 4096) -> None:
        self.annotator = annotator
        self.rule = rule
        self.batch_size = batch_size

    _constraints = {"rule": Choice(tuple(r.value for r in Rule)), "batch_size": Number(low=1, integer=True)}
    bank_is_enough = True
    gives_probabilities = False

    @classmethod
    def from_bank(cls, annotator: Annotator, bank: MemoryBank, *, rule: Rule | str = Rule.REMAP,
                  batch_size: int = 4096) -> ConsistentMarginalization:
        """Use a bank fitted earlier; it must come from an annotator with the same identity."""
        return cls(annotator, rule=rule, batch_size=batch_size).fit_bank(bank)

    def _fit(self, texts: list[str], y: np.ndarray, answers: Sequence[Annotation] | None) -> None:
        pass  # the bank is all it learns (Method.fit builds it; an unknown rule fails there)

    def decide(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None) -> list[Decision]:
        """Label ``texts`` and say how: per item the answer, candidates, action and final label.

        ``answers`` may hold the annotator's answers already made for these texts (for example to
        compare rules on one set of answers); they are then not asked again.
        """
        texts = list(texts)
        answers = self._answers(texts, answers)
        bank, rule = self.bank_, Rule(self.rule)
        decisions: list[Decision | None] = [None] * len(texts)
        to_reask: list[int] = []
        for i, answer in enumerate(answers):
            cands = bank.candidates(answer.key)
            if not cands:
                decisions[i] = Decision(answer, cands, Action.UNSEEN, answer.label)
            elif len(cands) >= 2:
                to_reask.append(i)
            elif rule is Rule.REMAP and cands[0] != answer.label:
                decisions[i] = Decision(answer, cands, Action.REMAP, cands[0])
            else:
                decisions[i] = Decision(answer, cands, Action.KEEP, answer.label)

        for idx in batched(to_reask, self.batch_size):
            cand_sets = [bank.candidates(answers[i].key) for i in idx]
            again = self.annotator.annotate([texts[i] for i in idx], bank.labels, candidates=cand_sets)
            for i, cands, reply in zip(idx, cand_sets, again):
                if reply.label in cands:
                    decisions[i] = Decision(answers[i], cands, Action.REASK, reply.label, reply)
                else:  # never trust an answer outside the set it was asked to choose from
                    decisions[i] = Decision(answers[i], cands, Action.REASK_INVALID, cands[0], reply)
        return decisions  # type: ignore[return-value]

    def _records(self, texts: list[str], answers: Sequence[Annotation] | None) -> list[Record]:
        return [Record(label=d.label, action=d.action.value, candidates=d.candidates, answer=d.answer)
                for d in self.decide(texts, answers=answers)]


class AnnotatorAlone(Method):
    """The annotator on its own (``base``): its answer, and its scores as probabilities where it
    gives them (else its answer, one-hot). What every other method is measured against.

    Parameters
    ----------
    annotator : Annotator
        What is asked about each text.

    Attributes
    ----------
    bank_ : MemoryBank
        The memory bank, kept only to show each answer's candidates.
    label_set_ : LabelSet
        The label set fitted on.
    classes_ : tuple of str
        Its labels.

    Examples
    --------
    >>> import numpy as np
    >>> from cmalign import LabelSet
    >>> from cmalign.annotators.base import ScoringAnnotator
    >>> from cmalign.method.examples import Swapper
    >>> base = AnnotatorAlone(Swapper()).fit(["set an alarm", "play a song"], ["alarm", "music"],
    ...                                      label_set=LabelSet(("alarm", "music", "weather")))
    >>> base.predict(["an alarm for seven"])
    ['weather']
    >>> base.records(["an alarm for seven"])[0].candidates
    ('alarm',)
    """

    bank_is_enough = True

    def __init__(self, annotator: Annotator | None) -> None:
        self.annotator = annotator

    @property
    def gives_probabilities(self) -> bool:
        return self.annotator is not None and self.annotator.has_scores

    def _fit(self, texts: list[str], y: np.ndarray, answers: Sequence[Annotation] | None) -> None:
        pass  # nothing to learn: the bank is kept only to show each answer's candidates

    def _proba(self, texts: list[str], answers: Sequence[Annotation] | None) -> np.ndarray:
        if all(a.scores is not None for a in answers):
            return np.stack([a.scores for a in answers]).astype(np.float64)
        return super()._proba(texts, answers)

    def _records(self, texts: list[str], answers: Sequence[Annotation] | None) -> list[Record]:
        return [Record(label=a.label, confidence=None if a.scores is None or a.label is None
                       else float(a.scores[self.label_set_.index(a.label)]),
                       candidates=self.bank_.candidates(a.key), answer=a) for a in answers]

