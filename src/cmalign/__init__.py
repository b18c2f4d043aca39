"""cmalign: make an LLM label text the way one user means it, from a handful of their labels.

Consistent Marginalization (Chen, Nitanda, Tsang, TMLR 2025) wraps an annotator, learns from the
user's preference samples where the annotator's answers and the user's labels part ways (the
memory bank), and corrects new answers with it. Every method follows one protocol
(:class:`Method`: ``fit``, ``predict``, ``predict_proba``, ``records``); :class:`Labeler` runs a
labelling job with one of them.

>>> from cmalign import EmbeddingAnnotator, Labeler
>>> texts = ["wake me at 7", "set an alarm for noon", "play some jazz", "next song please"]
>>> y = ["alarm", "alarm", "music", "music"]
>>> labeler = Labeler(EmbeddingAnnotator()).fit(texts, y)
>>> [r.label for records in labeler.label(["alarm at six", "put on a song"]) for r in records]
['alarm', 'music']
"""

__version__ = "0.1.0"

from .annotators import Annotation, Annotator, EmbeddingAnnotator, ScoringAnnotator
from .encoder import SentenceEncoder
from .errors import CmalignError, DataError, ModelError
from .labeler import Labeler
from .labels import LabelSet, normalize
from .method import (METHODS, AnnotatorAlone, CombinedCM, ConsistentMarginalization, Decision, KNNClassifier,
                     LogisticRegressionClassifier, MarginalCM, MemoryBank, Method, NotFittedError, Record, Rule)

__all__ = ["METHODS", "Annotation", "Annotator", "AnnotatorAlone", "CmalignError", "CombinedCM",
           "ConsistentMarginalization", "DataError", "Decision", "EmbeddingAnnotator", "KNNClassifier", "LabelSet",
           "Labeler", "LogisticRegressionClassifier", "MarginalCM", "MemoryBank", "Method", "ModelError",
           "NotFittedError", "Record", "Rule", "ScoringAnnotator", "SentenceEncoder", "normalize"]
