"""Annotators: anything that labels texts within a (possibly per-item restricted) label set."""

from .base import Annotation, Annotator
from .embedding import EmbeddingAnnotator, SentenceEncoder

__all__ = ["Annotation", "Annotator", "EmbeddingAnnotator", "SentenceEncoder"]
