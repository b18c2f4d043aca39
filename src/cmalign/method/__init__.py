"""The method: the memory bank, CM refinement, and the kNN baseline it is compared with."""

from .bank import BankEntry, MemoryBank, PreferenceSample
from .combined import CombinedCM
from .cm import Action, ConsistentMarginalization, Decision, Rule
from .knn import KNNClassifier
from .marginal import MarginalCM

__all__ = ["Action", "BankEntry", "CombinedCM", "MarginalCM", "ConsistentMarginalization", "Decision", "KNNClassifier",
           "MemoryBank", "PreferenceSample", "Rule"]
