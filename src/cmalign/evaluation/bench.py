"""The paper's protocol on one (dataset, budget, seed): every method on the same labelled budget."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..annotators.base import Annotator
from ..chat.backend import ChatBackend
from ..data.datasets import Budget, Dataset, Split, pool_and_size, protocol_split, split_from
from ..encoder import SentenceEncoder
from ..labels import LabelSet
from ..method.base import Method
from ..method.registry import METHODS, default_method, make_method
from ..errors import DataError
from ..prompting import ChatAnnotator, Decoding, ExampleRetriever, Prompts
from ..prompting.strategies import check_strategies
from ..select import annotator_scores, check_selectors, select
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
    fit_seconds: float | None = None  # fitting on the preference samples and adapting to the corpus
    weights: dict[str, float] | None = None  # the combined models' stacking weight per piece of evidence
    adapted: str | None = None  # what a transductive method learned from the corpus, in words
    actions: dict[str, dict[str, int]] | None = None  # a CM rule's actions: per action, items and who was right


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
    selection: str = "random"  # how the preference sample was drawn (cmalign.select)

    def to_json(self) -> dict:
        def method(m: MethodResult) -> dict:
            out = {"accuracy": round(m.accuracy, 6), "annotator_calls": m.annotator_calls,
                   "fit_annotator_calls": m.fit_annotator_calls}
            if m.annotator_tokens is not None:
                out |= {"annotator_tokens": m.annotator_tokens, "fit_annotator_tokens": m.fit_annotator_tokens}
            out |= {} if m.ece is None else {"ece": round(m.ece, 6)}
            out |= {} if m.weights is None else {"weights": {k: round(v, 3) for k, v in m.weights.items()}}
            out |= {} if m.adapted is None else {"adapted": m.adapted}
            out |= {} if m.actions is None else {"actions": m.actions}
            return out | ({} if m.fit_seconds is None else {"fit_seconds": round(m.fit_seconds, 3)})

        return {
            "dataset": self.dataset, "budget": self.budget, "seed": self.seed, "annotator": self.annotator,
            "n_preference": self.n_preference, "n_eval": self.n_eval, "selection": self.selection,
            "methods": {name: method(m) for name, m in self.methods.items()},
        } | ({} if self.usage is None else {"usage": self.usage})


def run_protocol(dataset: Dataset, budget: Budget, seed: int, annotator: Annotator, encoder: SentenceEncoder,
                 *, limit: int | None = None, selection: str = "random") -> RunResult:
    """Draw the preference sample (by ``selection``: see :func:`selected_split`), fit every method
    the annotator can feed on it, and score each on the evaluation items.

    The annotator's answers on the preference samples and on the evaluation items are made once
    and shared by every method (each is charged the calls it needs); kNN, the regression and the
    score-based methods read texts through ``encoder``, whatever the annotator is.
    """
    backend = annotator.backend  # a scorer that sends requests (openai-score:)
    before = backend.usage.to_json() if backend is not None else None
    split = selected_split(dataset, budget, seed, selection, annotator, encoder, limit=limit)
    methods = _run_methods(split, dataset.labels, annotator, encoder, list(METHODS))
    return RunResult(dataset=dataset.name, budget=str(budget), seed=seed, annotator=annotator.identity,
                     n_preference=len(split.preference), n_eval=len(split.evaluation), methods=methods,
                     selection=selection, usage=_usage_since(backend, before))


def selected_split(dataset: Dataset, budget: Budget, seed: int, selection: str, annotator: Annotator | None,
                   encoder: SentenceEncoder, *, limit: int | None = None) -> Split:
    """The protocol's split with the preference sample drawn by a selector, the gold labels standing
    in for the user: ``random`` is the paper's split itself; ``cover`` picks the whole budget from the
    pool's embeddings (and the annotator's scores, where it gives them); ``uncertain`` is the loop a user runs, half the budget by ``cover``, labelled,
    then the rest where the default method fitted on that half is least sure. Without a ``large``
    pool, the sample comes from ``small`` and the rest of it is evaluated, as in the protocol."""
    if selection == "random":
        return protocol_split(dataset, budget, seed, limit)
    pool, n = pool_and_size(dataset, budget)
    texts = [item.text for item in pool]
    vectors = encoder.encode(texts)
    scores = (lambda: annotator_scores(annotator, texts, dataset.labels)) \
        if annotator is not None and annotator.has_scores else None
    first = n if selection == "cover" else n // 2
    chosen = select("cover", first, len(pool), seed=seed, vectors=lambda: vectors, annotator_scores=scores)
    if selection == "uncertain":
        rest = np.setdiff1d(np.arange(len(pool)), chosen)
        method = _fitted_default([pool[i] for i in chosen], dataset.labels, annotator, encoder)
        rest_texts = [pool[i].text for i in rest]
        probabilities = lambda: (method.predict_proba(rest_texts), method.classes_)  # noqa: E731
        more = select("uncertain", n - len(chosen), len(rest), seed=seed, vectors=lambda: vectors[rest],
                      probabilities=probabilities, labelled=[pool[i].label for i in chosen])
        chosen = np.sort(np.concatenate([chosen, rest[more]]))
    return split_from(dataset, chosen, seed, limit)


def _fitted_default(items, labels: LabelSet, annotator: Annotator | None, encoder: SentenceEncoder) -> Method:
    """The method ``annotate`` would use with this annotator (the regression for a chat model, which
    would otherwise be asked about the whole pool), fitted on ``items``."""
    name = default_method(annotator) if annotator is not None and annotator.has_scores else "logreg"
    return make_method(name, annotator, encoder).fit([item.text for item in items], [item.label for item in items],
                                                     label_set=labels)


def run_strategies(dataset: Dataset, budget: Budget, seed: int, backend: ChatBackend, strategies: Sequence[str],
                   encoder: SentenceEncoder, *, limit: int | None = None, prompts: Prompts | None = None,
                   decoding: Decoding | None = None, k: int = 5, selection: str = "random") -> RunResult:
    """Each prompting strategy X alone and with every method it can feed (``X+cm`` the paper's rule,
    ``X+cm_remap`` ours), and the baselines that ask no annotator.

    Every strategy retrieves its examples from the preference samples, which also build its bank.
    Calls and tokens are what each method asked for (cache hits included: its cost on a cold
    cache); ``usage`` says what the backend really sent in this run.
    """
    split = selected_split(dataset, budget, seed, selection, None, encoder, limit=limit)
    pref_texts, pref_labels, _, _ = _columns(split)
    retriever = ExampleRetriever(encoder, pref_texts, pref_labels)
    before = backend.usage.to_json()
    methods: dict[str, MethodResult] = {}
    for strategy in strategies:
        annotator = ChatAnnotator(backend, strategy, prompts=prompts, retriever=retriever, k=k, decoding=decoding)
        names = [n for n, spec in METHODS.items() if spec.uses_annotator]
        for name, result in _run_methods(split, dataset.labels, annotator, encoder, names).items():
            methods[strategy if name == "base" else f"{strategy}+{name}"] = result
    methods |= _run_methods(split, dataset.labels, None, encoder, [n for n, s in METHODS.items() if not s.uses_annotator])
    return RunResult(dataset=dataset.name, budget=str(budget), seed=seed, annotator=backend.model_id,
                     n_preference=len(split.preference), n_eval=len(split.evaluation), methods=methods,
                     usage=_usage_since(backend, before), selection=selection)


def _usage_since(backend: ChatBackend | None, before: dict | None) -> dict | None:
    """What ``backend`` did since its usage read ``before`` (None without a backend)."""
    if backend is None:
        return None
    return {name: value - before[name] for name, value in backend.usage.to_json().items()}


def run_bench(runs: Sequence[tuple[Dataset, Budget, int]], encoder: SentenceEncoder, *,
              annotator: Annotator | None = None, backend: ChatBackend | None = None,
              strategies: Sequence[str] = (), limit: int | None = None, prompts: Prompts | None = None,
              decoding: Decoding | None = None, k: int = 5,
              selections: Sequence[str] = ("random",)) -> Iterator[RunResult]:
    """Each (dataset, budget, seed) in turn, the preference sample drawn by each of ``selections``:
    :func:`run_protocol` for a scoring ``annotator``, or :func:`run_strategies` (default: vanilla)
    for a chat ``backend``."""
    check_strategies(strategies)
    selections = check_selectors(selections)
    if limit is not None and limit < 1:
        raise DataError(f"{{=limit}} {limit} is below 1")
    if (annotator is None) == (backend is None):
        raise ValueError("give a scoring annotator or a chat backend")
    for (dataset, budget, seed), selection in itertools.product(runs, selections):
        encoder.reserve(len(dataset.large or ()) + len(dataset.small))  # each run reads the whole dataset again
        if backend is not None:
            yield run_strategies(dataset, budget, seed, backend, strategies or ["vanilla"], encoder, limit=limit,
                                 prompts=prompts, decoding=decoding, k=k, selection=selection)
        else:
            yield run_protocol(dataset, budget, seed, annotator, encoder, limit=limit, selection=selection)


def _run_methods(split: Split, labels: LabelSet, annotator: Annotator | None, encoder: SentenceEncoder,
                 names: Sequence[str]) -> dict[str, MethodResult]:
    """Fit each named method on the preference samples and score it on the evaluation items, all
    sharing one set of the annotator's answers on each. A transductive method first learns from the
    evaluation texts, unlabelled, as ``annotate`` lets it learn from the corpus it labels."""
    pref_texts, pref_labels, eval_texts, gold = _columns(split)
    gold_index = np.array([labels.index(y) for y in gold])
    chat = hasattr(annotator, "tokens")
    if annotator is not None:
        eval_answers, calls, tokens = _costed(annotator, annotator.annotate, eval_texts, labels)
        pref_answers, fit_calls, fit_tokens = _costed(annotator, annotator.annotate, pref_texts, labels)
    results = {}
    for name in names:
        method = METHODS[name].build(annotator, encoder)
        started = time.perf_counter()
        if not method.uses_annotator:
            method.fit(pref_texts, pref_labels, label_set=labels).adapt(eval_texts)
            fit_seconds = time.perf_counter() - started
            probs = method.predict_proba(eval_texts)
            results[name] = MethodResult(_accuracy_of(method, probs, gold), 0,
                                         ece=expected_calibration_error(probs, gold_index), fit_seconds=fit_seconds)
            continue
        method.fit(pref_texts, pref_labels, label_set=labels, answers=pref_answers).adapt(eval_texts, answers=eval_answers)
        fit_seconds = time.perf_counter() - started
        if method.gives_probabilities:
            probs, more, more_tokens = _costed(annotator, method.predict_proba, eval_texts, answers=eval_answers)
            predicted_acc = _accuracy_of(method, probs, gold)
            ece = expected_calibration_error(probs, gold_index)
        else:
            records, more, more_tokens = _costed(annotator, method.records, eval_texts, answers=eval_answers)
            predicted_acc, ece = accuracy([r.label for r in records], gold), None
        alone = name == "base"
        weights = method.feature_weights() if hasattr(method, "feature_weights") else None
        results[name] = MethodResult(predicted_acc, calls + more, 0 if alone else fit_calls, ece=ece,
                                     annotator_tokens=tokens + more_tokens if chat else None,
                                     fit_annotator_tokens=(0 if alone else fit_tokens) if chat else None,
                                     fit_seconds=fit_seconds, weights=weights,
                                     adapted=method.adaptation() if method.transductive else None,
                                     actions=None if method.gives_probabilities else _actions(records, gold))
    return results


def _actions(records, gold: Sequence[str]) -> dict[str, dict[str, int]] | None:
    """Per action of a CM rule (keep, unseen, remap, reask, reask-invalid): how many items took it,
    on how many the annotator's own answer was the gold label, and on how many the rule's label is.
    Where the rule gains or loses against its annotator, by what it did. None for other methods."""
    if not any(r.action for r in records):
        return None
    found: dict[str, dict[str, int]] = {}
    for record, truth in zip(records, gold):
        tally = found.setdefault(record.action, {"n": 0, "answer_right": 0, "label_right": 0})
        tally["n"] += 1
        tally["answer_right"] += record.answer is not None and record.answer.label == truth
        tally["label_right"] += record.label == truth
    return dict(sorted(found.items()))


def _accuracy_of(method: Method, probs: np.ndarray, gold: Sequence[str]) -> float:
    return accuracy([method.classes_[j] for j in probs.argmax(axis=1)], gold)


def _columns(split) -> tuple[list[str], list[str], list[str], list[str]]:
    """The split as (preference texts, their labels, evaluation texts, their gold labels)."""
    return ([item.text for item in split.preference], [item.label for item in split.preference],
            [item.text for item in split.evaluation], [item.label for item in split.evaluation])


def _costed(annotator: Annotator, step, *args, **kwargs):
    """(what ``step`` returns, the calls and tokens ``annotator`` asked for while it ran)."""
    calls, tokens = annotator.calls, getattr(annotator, "tokens", 0)
    out = step(*args, **kwargs)
    return out, annotator.calls - calls, getattr(annotator, "tokens", 0) - tokens
