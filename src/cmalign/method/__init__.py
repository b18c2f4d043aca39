"""The method: the memory bank, CM refinement and its variants, the baselines they are measured
against, all behind one protocol (:class:`Method`) and one registry (:data:`METHODS`)."""

from .bank import BankEntry, MemoryBank, PreferenceSample
from .base import Method, NotFittedError, Record
from .cm import Action, AnnotatorAlone, ConsistentMarginalization, Decision, Rule
from .combined import CombinedCM
from .knn import KNNClassifier
from .logreg import LogisticRegressionClassifier
from .marginal import MarginalCM
from .transductive import TransductiveCM
from .registry import METHODS, MethodSpec, default_method, make_method

__all__ = ["METHODS", "Action", "AnnotatorAlone", "BankEntry", "CombinedCM", "ConsistentMarginalization", "Decision",
           "KNNClassifier", "LogisticRegressionClassifier", "MarginalCM", "MemoryBank", "Method", "MethodSpec",
           "NotFittedError", "PreferenceSample", "Record", "Rule", "TransductiveCM", "default_method", "make_method"]
