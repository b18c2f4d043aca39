"""The labelling loop around a bank: ``select`` what to label next, ``review`` what to check,
``export`` to the tools a team labels in, and ``report`` on one page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.io import read_items, read_labelset
from ..errors import DataError
from ..files import check_outputs, is_stdio
from ..interchange import Exported, export
from ..labels import LabelSet
from ..method.bank import MemoryBank
from ..output import output_format
from ..progress import QUIET, Progress
from ..report import figures_folder, write_report
from ..review import least_confident, out_of_fold, preference_rows, ranked, write_review
from ..select import SELECTORS, choose, write_to_label
from ..settings import setting
from .common import Model, ModelOptions, at_least, readable


@dataclass(frozen=True)
class SelectOptions:
    """The ``n`` items of ``pool`` to label next, written to ``output`` with an empty label to fill
    (JSONL, CSV, TSV or Parquet by the suffix; ``-``: JSONL on standard output). With ``bank`` (the
    labels given so far, every round of them), items it holds are never offered again."""

    pool: str | Path
    output: str | Path
    n: int
    bank: str | Path | None = None
    labels: str | Path | None = None
    selector: str = setting("auto", "auto: cover without a bank, uncertain with one", choices=("auto", *SELECTORS))
    seed: int = setting(0, "the same seed, the same choice")
    fields: Sequence[str] | None = None
    text_field: str | None = None
    label_field: str | None = None
    overwrite: bool = False
    model: ModelOptions = field(default_factory=ModelOptions)


@dataclass(frozen=True)
class Selected:
    chosen: int
    pool: int
    selector: str
    output: str
    rounds: bool  # the bank held earlier rounds' labels

    def lines(self) -> list[str]:
        earlier = "EARLIER_ROUNDS... " if self.rounds else ""
        return [f"chose {self.chosen} of {self.pool} items ({self.selector}); fill in their label, then 'cmalign fit "
                f"{earlier}{self.output} -o BANK' (every round's files: the bank keeps every label given)",
                f"wrote {self.output}"]


def select_items(options: SelectOptions, progress: Progress = QUIET) -> Selected:
    at_least("n", options.n, 1)
    output_format(options.output)  # an unknown suffix fails before the selection runs
    check_outputs([options.output], [options.pool, options.bank, options.labels], overwrite=options.overwrite)
    bank = MemoryBank.load(options.bank) if options.bank else None
    label_set = read_labelset(options.labels) if options.labels else None
    if bank is not None:
        if label_set is not None:
            bank.check_label_set(label_set, options.bank, options.labels)
        label_set = bank.labels
    with readable(options.pool) as pool_path:
        pool = read_items(pool_path, text_field=options.text_field, label_field=options.label_field)
    progress.phase(f"read {len(pool)} items from {options.pool}")
    model = Model(options.model, progress)
    labeler = model.labeler(bank, options.bank) if bank is not None else None
    annotator = labeler.annotator if labeler is not None else model.annotator() if label_set else None
    selector = options.selector if options.selector != "auto" else ("uncertain" if bank is not None else "cover")
    progress.phase(f"choosing {options.n} of {len(pool)} items ({selector})")
    chosen = choose(pool, min(options.n, len(pool)), model.encoder, labeler=labeler, annotator=annotator,
                    label_set=label_set, selector=selector, seed=options.seed)
    write_to_label(options.output, chosen, fields=options.fields)
    return Selected(len(chosen), len(pool), selector, str(options.output), bank is not None)


@dataclass(frozen=True)
class ReviewOptions:
    """A ranked file of what a person should check: the bank's preference samples that the method,
    fitted without them, labels otherwise; then the ``n`` least confident items of ``labelled``
    (an ``annotate`` output)."""

    bank: str | Path
    output: str | Path
    labelled: str | Path | None = None
    n: int = setting(100, "least confident labelled items to add")
    folds: int = setting(5, "cross-fitting folds")
    seed: int = setting(0, "seed of the fold splits")
    overwrite: bool = False
    model: ModelOptions = field(default_factory=ModelOptions)


@dataclass(frozen=True)
class Reviewed:
    method: str
    samples: int
    flagged: int
    labelled: int
    output: str

    def lines(self) -> list[str]:
        return [f"{self.flagged} of {self.samples} preference samples get another label from {self.method} fitted "
                "without them (first in the file, the least probable given label first); then the "
                f"{self.labelled} least confident labelled items", f"wrote {self.output}"]


def review(options: ReviewOptions, progress: Progress = QUIET) -> Reviewed:
    at_least("n", options.n, 0)
    at_least("folds", options.folds, 2)
    check_outputs([options.output], [options.bank, options.labelled], overwrite=options.overwrite)
    bank = MemoryBank.load(options.bank)
    if not bank.samples:
        raise DataError("this bank holds only counts; a review needs the preference samples (refit it with "
                        "'cmalign fit')", options.bank)
    labelled = least_confident(options.labelled, options.n, bank.labels) if options.labelled else []  # before the model
    model = Model(options.model, progress)
    labeler = model.labeler(bank, options.bank)
    progress.phase(f"fitting {labeler.method} {options.folds} times without each fold of the preference samples")
    probs = out_of_fold(labeler.method, labeler.annotator, model.encoder, [s.text for s in bank.samples],
                        [s.label for s in bank.samples], bank.labels, folds=options.folds, seed=options.seed)
    flagged, agreed = preference_rows(bank, probs)
    write_review(options.output, ranked(flagged, labelled, agreed))
    return Reviewed(labeler.method, len(bank.samples), len(flagged), len(labelled), str(options.output))


@dataclass(frozen=True)
class ExportOptions:
    """``input`` (an ``annotate`` output; ``-``: standard input) as Parquet, CSV, TSV, JSONL or a
    Label Studio tasks file, by ``format`` or the output's suffix. The Label Studio labelling config
    lists the label set of ``bank`` or ``labels`` (default: the labels in the data)."""

    input: str | Path
    output: str | Path
    format: str | None = None
    bank: str | Path | None = None
    labels: str | Path | None = None
    overwrite: bool = False


def export_file(options: ExportOptions, progress: Progress = QUIET) -> Exported:
    if options.bank and options.labels:
        raise DataError("{=bank} and {=labels} both name the label set: give one of them")
    label_set: LabelSet | None = None
    if options.bank:
        label_set = MemoryBank.load(options.bank).labels
    elif options.labels:
        label_set = read_labelset(options.labels)
    with readable(options.input) as source:
        return export(source, options.output, fmt=options.format, labels=label_set,
                      labels_source=options.bank or options.labels, overwrite=options.overwrite)


@dataclass(frozen=True)
class ReportOptions:
    bank: str | Path
    output: str | Path
    labelled: str | Path | None = None
    review: str | Path | None = None
    bench: str | Path | None = None
    gold_field: str = "gold"
    overwrite: bool = False
    names: Mapping[str, str] | None = None  # how the page's hints spell a setting (a front end's flags)


@dataclass(frozen=True)
class Reported:
    written: tuple[Path, ...]  # the page, then its figures

    def lines(self) -> list[str]:
        page = self.written[0]
        return [f"wrote {page} and {len(self.written) - 1} figures in {figures_folder(page)}"]


def report(options: ReportOptions, progress: Progress = QUIET) -> Reported:
    """One self-contained HTML page (its figures in a folder beside it)."""
    if is_stdio(options.output):
        raise DataError("a report is a page and a folder of figures beside it: write it to an .html file",
                        options.output)
    return Reported(tuple(write_report(options.output, options.bank, labelled=options.labelled, review=options.review,
                                       bench=options.bench, gold_field=options.gold_field,
                                       overwrite=options.overwrite, names=options.names)))
