"""The paper's protocol on one (dataset, budget, seed): every method on the same labelled budget."""

from __future__ import annotations

from dataclasses import dataclass

from ..annotators.embedding import EmbeddingAnnotator
from ..data.datasets import Budget, Dataset, protocol_split
from ..method.cm import ConsistentMarginalization, Rule
from ..method.knn import KNNClassifier
from .metrics import accuracy


@dataclass(frozen=True)
class MethodResult:
    """One method's score on the evaluation items and what it cost.

    ``annotator_calls`` counts annotator queries made while labelling the evaluation items;
    ``fit_annotator_calls`` those made on the preference samples beforehand.
    """

    accuracy: float
    annotator_calls: int
    fit_annotator_calls: int = 0


@dataclass(frozen=True)
class RunResult:
    dataset: str
    budget: str
    seed: int
    annotator: str
    n_preference: int
    n_eval: int
    methods: dict[str, MethodResult]

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset, "budget": self.budget, "seed": self.seed, "annotator": self.annotator,
            "n_preference": self.n_preference, "n_eval": self.n_eval,
            "methods": {name: {"accuracy": round(m.accuracy, 6), "annotator_calls": m.annotator_calls,
                               "fit_annotator_calls": m.fit_annotator_calls}
                        for name, m in self.methods.items()},
        }


def run_protocol(dataset: Dataset, budget: Budget, seed: int, annotator: EmbeddingAnnotator,
                 *, progress: bool = False) -> RunResult:
    """Draw the preference sample, fit every method on it, and score each on the evaluation items.

    The annotator's answers on the evaluation items are made once and shared by ``base`` and the
    CM rules (they would be identical anyway); each method is charged the calls it needs.
    """
    split = protocol_split(dataset, budget, seed)
    pref_texts = [item.text for item in split.preference]
    pref_labels = [item.label for item in split.preference]
    eval_texts = [item.text for item in split.evaluation]
    gold = [item.label for item in split.evaluation]
    labels = dataset.labels

    start = annotator.calls
    base_answers = annotator.annotate(eval_texts, labels)
    base_calls = annotator.calls - start
    methods = {"base": MethodResult(accuracy([a.label for a in base_answers], gold), base_calls)}

    start = annotator.calls
    cm = ConsistentMarginalization(annotator, rule=Rule.PAPER).fit(
        pref_texts, pref_labels, label_set=labels, budget=str(budget), seed=seed, progress=progress)
    fit_calls = annotator.calls - start
    for name, rule in (("cm", Rule.PAPER), ("cm_remap", Rule.REMAP)):
        cm.rule = rule
        start = annotator.calls
        decisions = cm.decide(eval_texts, answers=base_answers)
        methods[name] = MethodResult(accuracy([d.label for d in decisions], gold),
                                     base_calls + annotator.calls - start, fit_calls)

    knn = KNNClassifier(annotator.encoder).fit(pref_texts, pref_labels, labels)
    methods["knn"] = MethodResult(accuracy(knn.predict(eval_texts), gold), 0)

    return RunResult(dataset=dataset.name, budget=str(budget), seed=seed, annotator=annotator.identity,
                     n_preference=len(split.preference), n_eval=len(split.evaluation), methods=methods)
