"""Annotators by name, as the command line spells them: ``embedded`` or ``hf:PATH``."""

from __future__ import annotations

from ..errors import CmalignError
from .base import Annotator
from .embedding import EmbeddingAnnotator, SentenceEncoder

SPECS = "embedded (the default), hf:PATH (a local causal LM folder or .gguf file)"


def make_annotator(spec: str, encoder: SentenceEncoder) -> Annotator:
    """Build the annotator ``spec`` names; ``encoder`` is the shared embedding model."""
    kind, _, arg = spec.partition(":")
    if kind == "embedded" and not arg:
        return EmbeddingAnnotator(encoder)
    if kind == "hf" and arg:
        from .hf import HFLabelScorer  # imports torch/transformers: only when asked for

        return HFLabelScorer(arg)
    raise CmalignError(f"unknown annotator {spec!r}; expected one of: {SPECS}")
