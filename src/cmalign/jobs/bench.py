"""``bench``: the paper's protocol over datasets x budgets x seeds (x selectors), run by run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..annotators.registry import is_chat
from ..data import Budget, load_datasets
from ..errors import CmalignError
from ..evaluation import RunResult, run_bench
from ..prompting.strategies import check_strategies
from ..progress import QUIET, Progress
from ..select import check_selectors
from .common import Model, ModelOptions, say_usage


@dataclass(frozen=True)
class BenchOptions:
    """``datasets`` (bundled names; default all) or a ``folder`` of your own, at each of ``budgets``
    and ``seeds``, the preference sample drawn by each of ``selections``; a chat model compares
    ``strategies``; ``limit`` evaluates on a seeded subset."""

    datasets: Sequence[str] = ()
    folder: str | Path | None = None
    budgets: Sequence[Budget] = (Budget(fraction=0.01), Budget(fraction=0.05))
    seeds: Sequence[int] = (0, 1)
    strategies: Sequence[str] = ()
    selections: Sequence[str] = ("random",)
    limit: int | None = None
    text_field: str | None = None
    label_field: str | None = None
    model: ModelOptions = field(default_factory=ModelOptions)


def bench(options: BenchOptions, progress: Progress = QUIET) -> Iterator[RunResult]:
    """Each run's result as soon as it is done."""
    strategies = check_strategies(options.strategies)
    if strategies and not is_chat(options.model.annotator):
        raise CmalignError(f"{{=strategies}} needs a chat model (hf:PATH or openai:MODEL), not {options.model.annotator}")
    selections = check_selectors(options.selections)
    datasets = load_datasets(options.datasets, options.folder, text_field=options.text_field,
                             label_field=options.label_field)
    model = Model(options.model, progress)
    backend = model.backend()
    annotator = None if backend else model.annotator()
    runs = [(d, b, s) for d in datasets for b in options.budgets for s in options.seeds]
    try:
        with progress.bar(len(runs) * len(selections), "bench", unit="run") as bar:
            for result in run_bench(runs, model.encoder, annotator=annotator, backend=backend, strategies=strategies,
                                    limit=options.limit, prompts=options.model.prompt_templates(),
                                    k=options.model.shots, decoding=options.model.decoding, selections=selections):
                bar.update(1)
                yield result
    finally:
        say_usage(backend or annotator)  # a chat model's, or a scorer's requests (openai-score:)
