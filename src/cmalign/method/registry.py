"""Every method by name: how to build it and what it needs. ``cmalign bench``, ``annotate``'s choice of
method, the README's table and the tests read this one table; adding a method is one entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..annotators.base import Annotator
from ..encoder import SentenceEncoder
from ..errors import CmalignError
from .base import Method
from .cm import AnnotatorAlone, ConsistentMarginalization, Rule
from .combined import CombinedCM
from .knn import KNNClassifier
from .logreg import LogisticRegressionClassifier
from .marginal import MarginalCM
from .transductive import TransductiveCM


@dataclass(frozen=True)
class MethodSpec:
    """A method's name, what it does (one line, as the README's table says it), and how to build it."""

    name: str
    cls: type[Method]
    build: Callable[[Annotator, SentenceEncoder | None], Method]
    summary: str

    @property
    def uses_annotator(self) -> bool:
        return self.cls.uses_annotator

    @property
    def needs_samples(self) -> bool:
        """Whether it fits on the bank's preference samples (texts), not just its counts."""
        return not self.cls.bank_is_enough


METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("base", AnnotatorAlone, lambda a, e: AnnotatorAlone(a),
          "the annotator alone (the embedded one: the label whose readable name is most similar to the text)"),
    MethodSpec("cm", ConsistentMarginalization, lambda a, e: ConsistentMarginalization(a, rule=Rule.PAPER),
          "the paper's rule: where the user's labels for the annotator's answer `r` form a set of 2 or more, "
          "ask again within that set; otherwise keep `r`"),
    MethodSpec("cm_remap", ConsistentMarginalization, lambda a, e: ConsistentMarginalization(a, rule=Rule.REMAP),
          "as `cm`, and where the user always meant one other label when the annotator said `r`, use it"),
    MethodSpec("knn", KNNClassifier, lambda a, e: KNNClassifier(e),
          "a baseline on the same preference samples and embeddings: similarity-weighted k nearest "
          "neighbours, `k` by leave-one-out on them"),
    MethodSpec("logreg", LogisticRegressionClassifier, lambda a, e: LogisticRegressionClassifier(e),
          "the baseline a practitioner fits first: multinomial logistic regression on the same "
          "embeddings, `C` by 5-fold cross-validation inside the preference samples"),
    MethodSpec("cm_marg", MarginalCM, lambda a, e: MarginalCM(a, encoder=e),
          "probabilistic marginalisation over the annotator's answers `r`: its score for each `r` times the "
          "bank's transition from `r` to the user's labels, smoothed toward \"the user meant what the "
          "annotator said\""),
    MethodSpec("cm_ibank", MarginalCM, lambda a, e: MarginalCM(a, instance_dependent=True, encoder=e),
          "as `cm_marg` with an instance-dependent bank: counts weighted by the preference samples' "
          "similarity to `x`"),
    MethodSpec("cm_stack", CombinedCM, lambda a, e: CombinedCM(a, encoder=e),
          "the combined model: the annotator's evidence and six kinds of evidence from the user's labels, "
          "weighted by held-out likelihood"),
    MethodSpec("cm_best", TransductiveCM, lambda a, e: TransductiveCM(a, encoder=e),
          "`cm_stack` on vectors centred on the mean of the user's texts, then taught by the corpus it "
          "labels: the label names refined on the corpus's texts, "
          "one round of self-training and label propagation over the corpus's nearest neighbours, whether "
          "and how much of each chosen by cross-fitting on the preference samples"),
)}

RULES = tuple(name for name, spec in METHODS.items() if spec.cls is ConsistentMarginalization)


DEFAULT = "cm_best"


def default_method(annotator: Annotator | None = None) -> str:
    """The best method: the combined model, learning from the corpus, whatever the annotator (one
    without scores is read through its answers and the bank's transition from them)."""
    return DEFAULT


def make_method(name: str, annotator: Annotator, encoder: SentenceEncoder | None = None) -> Method:
    """Build method ``name`` around ``annotator``; one clear error when it cannot use that annotator."""
    spec = METHODS.get(name)
    if spec is None:
        raise CmalignError(f"unknown method {name!r}; methods: {', '.join(METHODS)}")
    return spec.build(annotator, encoder)
