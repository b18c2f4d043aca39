"""``fit``: the user's labelled files -> a memory bank (and the method's fitted state beside it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.io import Preferences, read_preferences
from ..errors import DataError
from ..files import check_outputs, is_stdio
from ..labeler import Labeler, RunPlan, state_path
from ..labels import LabelSet
from ..method import METHODS
from ..progress import QUIET, Progress
from .common import Model, ModelOptions, readable, say_usage


@dataclass(frozen=True)
class FitOptions:
    """``preferences``: one file per labelling round (JSONL, CSV, TSV, Parquet or a Label Studio
    export; ``-`` standard input); their items are learned from together. ``labels``: a label-set
    file (default: the labels in the files, in order of first appearance)."""

    preferences: Sequence[str | Path]
    output: str | Path
    labels: str | Path | None = None
    text_field: str | None = None
    label_field: str | None = None
    overwrite: bool = False
    dry_run: bool = False
    model: ModelOptions = field(default_factory=ModelOptions)


@dataclass(frozen=True)
class FitResult:
    method: str
    samples: int
    labels: LabelSet
    unannotated: int                     # Label Studio tasks without an annotation, left out
    described: str = ""                  # what the bank learned, in a sentence
    written: tuple[Path, ...] = ()
    plan: RunPlan | None = None          # a dry run's count of requests, instead of a fit

    def lines(self) -> list[str]:
        """What the job did, in words."""
        if self.plan is not None:
            return self.plan.lines()
        skipped = f" ({self.unannotated} Label Studio tasks without an annotation left out)" if self.unannotated else ""
        return [f"fitted {self.method} on {self.samples} preference samples{skipped}, {len(self.labels)} labels: "
                f"{self.described}", f"wrote {', '.join(str(p) for p in self.written)}"]


def fit(options: FitOptions, progress: Progress = QUIET) -> FitResult:
    """Read every preference file, ask the annotator about each sample once, build the bank and fit
    the method; write both atomically. Nothing is read or loaded before the output is checked."""
    if not options.preferences:
        raise DataError("no preference file to learn from")
    if is_stdio(options.output):
        raise DataError("a bank is a file the other commands read back: write it to a .json file", options.output)
    method = options.model.method_name
    if not options.dry_run:
        check_outputs([options.output], [*options.preferences, options.labels], overwrite=options.overwrite,
                      sidecars=[state_path(options.output, method)],
                      exists="exists already: {=overwrite} to replace the bank (and the method's state beside it)")
    preferences = read_rounds(options)
    items, label_set = preferences.items, preferences.labels
    progress.phase(f"read {len(items)} preference samples of {len(label_set)} labels")
    if method in METHODS:  # a fit this machine cannot hold is refused before the model loads
        METHODS[method].build(None, None).check_cost(len(items), len(label_set))
    texts, y = [i.text for i in items], [i.label for i in items]
    model = Model(options.model, progress)
    annotator = model.annotator((texts, y))
    labeler = Labeler(annotator, options.model.method, encoder=model.encoder)
    if options.dry_run:
        return FitResult(labeler.method, len(items), label_set, preferences.unannotated,
                         plan=labeler.plan(texts, label_set=label_set))
    progress.phase(f"fitting {labeler.method} on {len(items)} preference samples")
    try:
        labeler.fit(texts, y, label_set=label_set, budget=f"n={len(items)}")
    finally:
        say_usage(annotator)
    progress.phase("writing the bank")
    written = labeler.save(options.output)
    return FitResult(labeler.method, len(items), label_set, preferences.unannotated, labeler.bank_.describe(),
                     tuple(written))


def read_rounds(options: FitOptions) -> Preferences:
    """The items of every preference file, in order, over one label set."""
    rounds = []
    for path in options.preferences:
        with readable(path) as readable_path:
            rounds.append(read_preferences(readable_path, text_field=options.text_field,
                                           label_field=options.label_field, labels_path=options.labels))
    items = [item for part in rounds for item in part.items]
    unannotated = sum(part.unannotated for part in rounds)
    label_set = rounds[0].labels if options.labels is not None else LabelSet.of(item.label for item in items)
    return Preferences(items, label_set, unannotated)
