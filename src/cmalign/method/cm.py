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

from tqdm.auto import tqdm

from ..annotators.base import Annotation, Annotator
from ..errors import DataError
from ..labels import LabelSet
from .bank import MemoryBank


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


class ConsistentMarginalization:
    """Wraps an annotator; ``fit`` learns the memory bank, ``predict`` labels new texts.

    >>> cm = ConsistentMarginalization(EmbeddingAnnotator(), rule="remap")  # doctest: +SKIP
    >>> cm.fit(pref_texts, pref_labels).predict(["my card still hasn't come"])  # doctest: +SKIP
    ['card arrival']
    """

    def __init__(self, annotator: Annotator, *, rule: Rule | str = Rule.REMAP, batch_size: int = 4096) -> None:
        self.annotator = annotator
        self.rule = Rule(rule)
        self.batch_size = batch_size
        self.bank_: MemoryBank | None = None

    @classmethod
    def from_bank(cls, annotator: Annotator, bank: MemoryBank, *, rule: Rule | str = Rule.REMAP,
                  batch_size: int = 4096) -> ConsistentMarginalization:
        """Use a bank fitted earlier; it must come from an annotator with the same identity."""
        if bank.annotator != annotator.identity:
            raise DataError(f"the memory bank was fitted with annotator {bank.annotator!r}, "
                            f"not {annotator.identity!r}: use the annotator it was fitted with "
                            "(cmalign: the same --annotator as for 'fit')")
        model = cls(annotator, rule=rule, batch_size=batch_size)
        model.bank_ = bank
        return model

    @property
    def labels(self) -> LabelSet:
        return self._bank().labels

    def _bank(self) -> MemoryBank:
        if self.bank_ is None:
            raise RuntimeError("call fit() or from_bank() first")
        return self.bank_

    def fit(self, texts: Sequence[str], labels: Sequence[str], *, label_set: LabelSet | None = None,
            budget: str | None = None, seed: int | None = None, progress: bool = False,
            answers: Sequence[Annotation] | None = None) -> ConsistentMarginalization:
        """Run the annotator on the preference samples and count (response -> user label).

        ``answers`` may hold the annotator's answers on ``texts`` already made; they are then used.
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts for {len(labels)} labels")
        label_set = label_set if label_set is not None else LabelSet.of(labels)
        if answers is None:
            answers = self._annotate_batches(texts, label_set, progress=progress, what="fit")
        elif len(answers) != len(texts):
            raise ValueError(f"{len(answers)} answers for {len(texts)} texts")
        self.bank_ = MemoryBank.build(answers, labels, label_set, annotator=self.annotator.identity,
                                      budget=budget, seed=seed, texts=texts)
        return self

    def _annotate_batches(self, texts: Sequence[str], labels: LabelSet, *, progress: bool,
                          what: str) -> list[Annotation]:
        out: list[Annotation] = []
        with tqdm(total=len(texts), desc=what, unit="item", disable=not progress, leave=False) as bar:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start:start + self.batch_size]
                out.extend(self.annotator.annotate(chunk, labels))
                bar.update(len(chunk))
        return out

    def decide(self, texts: Sequence[str], *, answers: Sequence[Annotation] | None = None,
               progress: bool = False) -> list[Decision]:
        """Label ``texts`` and say how: per item the answer, candidates, action and final label.

        ``answers`` may hold the annotator's answers already made for these texts (for example to
        compare rules on one set of answers); they are then not asked again.
        """
        bank = self._bank()
        if answers is None:
            answers = self._annotate_batches(texts, bank.labels, progress=progress, what="annotate")
        elif len(answers) != len(texts):
            raise ValueError(f"{len(answers)} answers for {len(texts)} texts")

        decisions: list[Decision | None] = [None] * len(texts)
        to_reask: list[int] = []
        for i, answer in enumerate(answers):
            cands = bank.candidates(answer.key)
            if not cands:
                decisions[i] = Decision(answer, cands, Action.UNSEEN, answer.label)
            elif len(cands) >= 2:
                to_reask.append(i)
            elif self.rule is Rule.REMAP and cands[0] != answer.label:
                decisions[i] = Decision(answer, cands, Action.REMAP, cands[0])
            else:
                decisions[i] = Decision(answer, cands, Action.KEEP, answer.label)

        for start in range(0, len(to_reask), self.batch_size):
            idx = to_reask[start:start + self.batch_size]
            cand_sets = [bank.candidates(answers[i].key) for i in idx]
            again = self.annotator.annotate([texts[i] for i in idx], bank.labels, candidates=cand_sets)
            for i, cands, reply in zip(idx, cand_sets, again):
                if reply.label in cands:
                    decisions[i] = Decision(answers[i], cands, Action.REASK, reply.label, reply)
                else:  # never trust an answer outside the set it was asked to choose from
                    decisions[i] = Decision(answers[i], cands, Action.REASK_INVALID, cands[0], reply)
        return decisions  # type: ignore[return-value]

    def predict(self, texts: Sequence[str]) -> list[str | None]:
        """The final label per text (None where the annotator answered outside the label set)."""
        return [d.label for d in self.decide(texts)]
