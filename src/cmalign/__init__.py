"""cmalign: make an LLM label text the way one user means it, from a handful of their labels.

Consistent Marginalization (Chen, Nitanda, Tsang, TMLR 2025) wraps an annotator, learns from the
user's preference samples where the annotator's answers and the user's labels part ways (the
memory bank), and corrects new answers with it.

>>> from cmalign import ConsistentMarginalization, EmbeddingAnnotator
>>> cm = ConsistentMarginalization(EmbeddingAnnotator())  # doctest: +SKIP
>>> cm.fit(texts, labels).predict(new_texts)  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .annotators import Annotation, Annotator, EmbeddingAnnotator, SentenceEncoder
from .errors import CmalignError, DataError, ModelError
from .labels import LabelSet, normalize
from .method import (CombinedCM, ConsistentMarginalization, Decision, KNNClassifier, MarginalCM,
                     MemoryBank, Rule)

__all__ = ["Annotation", "Annotator", "CmalignError", "CombinedCM", "ConsistentMarginalization", "DataError",
           "Decision", "EmbeddingAnnotator", "KNNClassifier", "LabelSet", "MarginalCM", "MemoryBank", "ModelError",
           "Rule", "SentenceEncoder", "normalize"]
