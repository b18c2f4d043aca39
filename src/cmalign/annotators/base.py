"""What every annotator does: label a batch of texts, each within the full label set or within a
candidate set of its own.

An LLM backend, a local model and the embedded sentence-embedding model all answer through
:meth:`Annotator.annotate`, so the memory bank and the refinement never know which one they hold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..labels import LabelSet

if TYPE_CHECKING:
    from ..chat.backend import ChatBackend

Candidates = Sequence[str] | None


@dataclass(frozen=True)
class Annotation:
    """One answer: the raw response, its bank key and canonical label (None if out of the set).

    ``scores``, where the backend has them, is a probability per label of the label set in its
    order, zero outside the labels the item was allowed. ``votes``, where a strategy asked more
    than once (``consistent``), holds each answer's label (None outside the set); the answer is
    their vote.
    """

    raw: str
    key: str
    label: str | None
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)
    votes: tuple[str | None, ...] = field(default=(), compare=False, repr=False)


class Annotator(ABC):
    """Labels texts with a label set. Subclasses implement :meth:`_annotate`.

    ``calls`` counts item queries (one per text per :meth:`annotate`), the unit an API bills;
    annotators that send several requests per item (``counts_own_calls``) count those instead.
    """

    counts_own_calls = False
    # declared for every annotator, so a caller reads them without a default: the chat backend its
    # requests go through (None: it sends none) and its prompting strategy (None: it prompts none)
    backend: ChatBackend | None = None
    strategy: str | None = None

    def __init__(self) -> None:
        self.calls = 0

    @property
    @abstractmethod
    def identity(self) -> str:
        """A stable string naming everything that determines the answers (model, prompt, settings).

        Memory banks record it, so a bank is never applied to answers from another annotator.
        """

    @property
    def has_scores(self) -> bool:
        return False

    def __deepcopy__(self, memo: dict) -> Annotator:
        # an annotator is a shared resource (a model in memory, a server connection, a cache):
        # copying a method that wraps it, as scikit-learn's clone does, shares it
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"

    @abstractmethod
    def _annotate(self, texts: Sequence[str], labels: LabelSet,
                  candidates: Sequence[tuple[str, ...] | None]) -> list[Annotation]:
        """Answer each text; ``candidates[i]`` (when not None) restricts item i's allowed labels."""

    def annotate(self, texts: Sequence[str], labels: LabelSet,
                 candidates: Sequence[Candidates] | None = None) -> list[Annotation]:
        """Answer each text with one label of ``labels`` (or of its own candidate set).

        Examples
        --------
        >>> from cmalign.method.examples import CARD_LABELS, CardSayer
        >>> [a.label for a in CardSayer().annotate(["my card never came", "what rate do you give"], CARD_LABELS)]
        ['card arrival', 'lost or stolen']
        >>> CardSayer().annotate(["my card never came"], CARD_LABELS, candidates=[("lost or stolen",)])[0].label
        'lost or stolen'
        """
        if candidates is None:
            restricted: list[tuple[str, ...] | None] = [None] * len(texts)
        else:
            if len(candidates) != len(texts):
                raise ValueError(f"{len(candidates)} candidate sets for {len(texts)} texts")
            restricted = []
            for cands in candidates:
                if cands is None:
                    restricted.append(None)
                    continue
                cands = tuple(cands)
                unknown = [c for c in cands if c not in labels]
                if not cands or unknown:
                    raise ValueError(f"candidate set {cands!r} is empty or not within the label set")
                restricted.append(cands)
        if not texts:
            return []
        answers = self._annotate(texts, labels, restricted)
        if not self.counts_own_calls:
            self.calls += len(texts)
        return answers


class ScoringAnnotator(Annotator):
    """An annotator with a score for every label: the answer is the best allowed label, and its
    ``scores`` are a softmax of ``label_scores / temperature`` over the allowed labels (zero
    elsewhere). Subclasses implement :meth:`label_scores`; a re-ask within candidates is then just
    a narrower softmax over the same scores. A row of NaN is a text the annotator could not score
    (a server refused its request): it gets no answer (``label`` None) and even scores.
    """

    temperature: float = 1.0

    @property
    def has_scores(self) -> bool:
        return True

    @abstractmethod
    def label_scores(self, texts: Sequence[str], labels: LabelSet) -> np.ndarray:
        """Shape (texts, labels): how well each label fits each text, higher is better."""

    def _annotate(self, texts: Sequence[str], labels: LabelSet,
                  candidates: Sequence[tuple[str, ...] | None]) -> list[Annotation]:
        scores = self.label_scores(texts, labels)
        allowed = np.ones(scores.shape, dtype=bool)
        for i, cands in enumerate(candidates):
            if cands is not None:
                allowed[i] = False
                allowed[i, [labels.index(c) for c in cands]] = True
        unscored = np.isnan(scores).any(axis=1)
        logits = np.where(allowed, np.where(unscored[:, None], 0.0, scores) / self.temperature, -np.inf)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)  # first maximum: ties go to the earlier label
        return [Annotation(raw="", key="", label=None, scores=probs[i]) if unscored[i] else
                Annotation(raw=labels.labels[j], key=labels.labels[j], label=labels.labels[j], scores=probs[i])
                for i, j in enumerate(best)]
