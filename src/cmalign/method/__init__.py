"""The method: the memory bank, CM refinement, and the kNN baseline it is compared with."""

from .bank import BankEntry, MemoryBank
from .cm import Action, ConsistentMarginalization, Decision, Rule
from .knn import KNNClassifier

__all__ = ["Action", "BankEntry", "ConsistentMarginalization", "Decision", "KNNClassifier",
           "MemoryBank", "Rule"]
