"""A scripted annotator for testing the refinement rules' logic without a model.

It answers from a table (text -> raw answer) and, when restricted, from a second table (text ->
re-ask answer). The end-to-end tests use the real embedded model; this one pins down rule logic
that no model can be made to exercise on demand (an answer outside its candidate set, say).
"""

from __future__ import annotations

from cmalign.annotators.base import Annotation, Annotator


class ScriptedAnnotator(Annotator):
    def __init__(self, answers: dict[str, str], reasks: dict[str, str] | None = None) -> None:
        super().__init__()
        self.answers = answers
        self.reasks = reasks or {}
        self.restricted_calls: list[tuple[str, tuple[str, ...]]] = []

    @property
    def identity(self) -> str:
        return "scripted"

    def _annotate(self, texts, labels, candidates):
        out = []
        for text, cands in zip(texts, candidates):
            if cands is None:
                raw = self.answers[text]
            else:
                self.restricted_calls.append((text, cands))
                raw = self.reasks.get(text, cands[-1])
            resolved = labels.resolve(raw)
            out.append(Annotation(raw=raw, key=resolved.key, label=resolved.label))
        return out
