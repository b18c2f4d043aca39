"""The paper's protocol on one (dataset, budget, seed): every method on the same labelled budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..annotators.base import Annotator
from ..annotators.chat import ChatBackend
from ..annotators.prompts import Prompts
from ..annotators.strategies import ChatAnnotator, Decoding, ExampleRetriever
from ..annotators.embedding import SentenceEncoder
from ..data.datasets import Budget, Dataset, protocol_split
from ..method.cm import ConsistentMarginalization, Rule
from ..method.knn import KNNClassifier
from ..method.combined import CombinedCM
from ..method.evidence import gather
from ..method.marginal import MarginalCM
from .metrics import accuracy, expected_calibration_error


@dataclass(frozen=True)
class MethodResult:
    """One method's score on the evaluation items and what it cost.

    ``annotator_calls`` counts annotator queries made while labelling the evaluation items;
    ``fit_annotator_calls`` those made on the preference samples beforehand.
    """

    accuracy: float
    annotator_calls: int
    fit_annotator_calls: int = 0
    ece: float | None = None  # expected calibration error, for methods that give probabilities
    annotator_tokens: int | None = None  # prompt + completion tokens, for chat models
    fit_annotator_tokens: int | None = None


@dataclass(frozen=True)
class RunResult:
    dataset: str
    budget: str
    seed: int
    annotator: str
    n_preference: int
    n_eval: int
    methods: dict[str, MethodResult]
    usage: dict | None = None  # a chat backend's requests, cache hits and tokens sent in this run

    def to_json(self) -> dict:
        def method(m: MethodResult) -> dict:
            out = {"accuracy": round(m.accuracy, 6), "annotator_calls": m.annotator_calls,
                   "fit_annotator_calls": m.fit_annotator_calls}
            if m.annotator_tokens is not None:
                out |= {"annotator_tokens": m.annotator_tokens, "fit_annotator_tokens": m.fit_annotator_tokens}
            return out | ({} if m.ece is None else {"ece": round(m.ece, 6)})

        return {
            "dataset": self.dataset, "budget": self.budget, "seed": self.seed, "annotator": self.annotator,
            "n_preference": self.n_preference, "n_eval": self.n_eval,
            "methods": {name: method(m) for name, m in self.methods.items()},
        } | ({} if self.usage is None else {"usage": self.usage})


def run_protocol(dataset: Dataset, budget: Budget, seed: int, annotator: Annotator, encoder: SentenceEncoder,
                 *, limit: int | None = None) -> RunResult:
    """Draw the preference sample, fit every method on it, and score each on the evaluation items.

    The annotator's answers on the evaluation items are made once and shared by ``base`` and the
    CM rules (they would be identical anyway); each method is charged the calls it needs. kNN and
    the score-based variants use ``encoder`` for their embeddings, whatever the annotator is.
    """
    split = protocol_split(dataset, budget, seed, limit)
    pref_texts, pref_labels, eval_texts, gold = _columns(split)
    labels = dataset.labels
    gold_index = np.array([labels.index(y) for y in gold])

    start = annotator.calls
    base_answers = annotator.annotate(eval_texts, labels)
    base_calls = annotator.calls - start
    eval_evidence = gather(eval_texts, labels, annotator, encoder, base_answers)
    methods = {"base": MethodResult(accuracy([a.label for a in base_answers], gold), base_calls,
                                    ece=expected_calibration_error(eval_evidence.A, gold_index))}

    start = annotator.calls
    pref_answers = annotator.annotate(pref_texts, labels)
    fit_calls = annotator.calls - start
    cm = ConsistentMarginalization(annotator, rule=Rule.PAPER).fit(
        pref_texts, pref_labels, label_set=labels, budget=str(budget), seed=seed, answers=pref_answers)
    for name, rule in (("cm", Rule.PAPER), ("cm_remap", Rule.REMAP)):
        cm.rule = rule
        start = annotator.calls
        decisions = cm.decide(eval_texts, answers=base_answers)
        methods[name] = MethodResult(accuracy([d.label for d in decisions], gold),
                                     base_calls + annotator.calls - start, fit_calls)

    knn = KNNClassifier(encoder).fit(pref_texts, pref_labels, labels)
    methods["knn"] = MethodResult(accuracy(knn.predict(eval_texts), gold), 0)

    # the score-based variants share one look at the preference samples and one at the eval items
    pref_evidence = gather(pref_texts, labels, annotator, encoder, pref_answers)
    pref_index = np.array([labels.index(y) for y in pref_labels])
    variants = {
        "cm_marg": MarginalCM(annotator, encoder=encoder),
        "cm_ibank": MarginalCM(annotator, instance_dependent=True, encoder=encoder),
        "cm_best": CombinedCM(annotator, encoder=encoder),
    }
    for name, model in variants.items():
        probs = model.fit_evidence(pref_evidence, pref_index, labels).proba_evidence(eval_evidence)
        predicted = [labels.labels[j] for j in probs.argmax(axis=1)]
        methods[name] = MethodResult(accuracy(predicted, gold), base_calls, fit_calls,
                                     ece=expected_calibration_error(probs, gold_index))

    return RunResult(dataset=dataset.name, budget=str(budget), seed=seed, annotator=annotator.identity,
                     n_preference=len(split.preference), n_eval=len(split.evaluation), methods=methods)


def run_strategies(dataset: Dataset, budget: Budget, seed: int, backend: ChatBackend, strategies: Sequence[str],
                   encoder: SentenceEncoder, *, limit: int | None = None, prompts: Prompts | None = None,
                   decoding: Decoding | None = None, k: int = 5) -> RunResult:
    """Each prompting strategy X alone and with CM (``X+cm`` the paper's rule, ``X+cm_remap`` ours).

    Every strategy retrieves its examples from the preference samples, which also build its bank.
    Calls and tokens are what each method asked for (cache hits included: its cost on a cold
    cache); ``usage`` says what the backend really sent in this run.
    """
    split = protocol_split(dataset, budget, seed, limit)
    pref_texts, pref_labels, eval_texts, gold = _columns(split)
    labels = dataset.labels
    retriever = ExampleRetriever(encoder, pref_texts, pref_labels)
    before = backend.usage.to_json()

    methods: dict[str, MethodResult] = {}
    for strategy in strategies:
        annotator = ChatAnnotator(backend, strategy, prompts=prompts, retriever=retriever, k=k, decoding=decoding)
        answers, calls, tokens = _costed(annotator, annotator.annotate, eval_texts, labels)
        methods[strategy] = MethodResult(accuracy([a.label for a in answers], gold), calls,
                                         annotator_tokens=tokens, fit_annotator_tokens=0)
        pref_answers, fit_calls, fit_tokens = _costed(annotator, annotator.annotate, pref_texts, labels)
        cm = ConsistentMarginalization(annotator, rule=Rule.PAPER).fit(
            pref_texts, pref_labels, label_set=labels, budget=str(budget), seed=seed, answers=pref_answers)
        for suffix, rule in (("cm", Rule.PAPER), ("cm_remap", Rule.REMAP)):
            cm.rule = rule
            decisions, reask_calls, reask_tokens = _costed(annotator, cm.decide, eval_texts, answers=answers)
            methods[f"{strategy}+{suffix}"] = MethodResult(
                accuracy([d.label for d in decisions], gold), calls + reask_calls, fit_calls,
                annotator_tokens=tokens + reask_tokens, fit_annotator_tokens=fit_tokens)

    knn = KNNClassifier(encoder).fit(pref_texts, pref_labels, labels)
    methods["knn"] = MethodResult(accuracy(knn.predict(eval_texts), gold), 0)
    usage = {name: value - before[name] for name, value in backend.usage.to_json().items()}
    return RunResult(dataset=dataset.name, budget=str(budget), seed=seed, annotator=backend.model_id,
                     n_preference=len(split.preference), n_eval=len(split.evaluation), methods=methods,
                     usage=usage)


def _columns(split) -> tuple[list[str], list[str], list[str], list[str]]:
    """The split as (preference texts, their labels, evaluation texts, their gold labels)."""
    return ([item.text for item in split.preference], [item.label for item in split.preference],
            [item.text for item in split.evaluation], [item.label for item in split.evaluation])


def _costed(annotator: ChatAnnotator, step, *args, **kwargs):
    """(what ``step`` returns, the requests and tokens ``annotator`` asked for while it ran)."""
    calls, tokens = annotator.calls, annotator.tokens
    out = step(*args, **kwargs)
    return out, annotator.calls - calls, annotator.tokens - tokens
