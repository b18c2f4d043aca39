"""Who answers: the annotator protocol, scoring annotators (the embedded model, a local LM scoring
labels) and the registry that builds any annotator by name."""

from .base import Annotation, Annotator, ScoringAnnotator
from .embedding import EmbeddingAnnotator

__all__ = ["Annotation", "Annotator", "EmbeddingAnnotator", "ScoringAnnotator"]
