"""``annotate``: an unlabelled file -> the user's labels for every item, through a bank.

The input is streamed (a chunk in memory at a time); the output is claimed before any model loads,
so a bad path or a second writer costs nothing; a run cut short resumes where it stopped.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.io import ItemFile, read_labelset
from ..engine import RayEngine
from ..errors import CmalignError
from ..labeler import Labeler, RunPlan, state_path
from ..method.bank import MemoryBank
from ..method.registry import METHODS
from ..method.transductive import SAMPLE
from ..files import is_stdio
from ..output import LabelledOutput, describe
from ..process import default_threads, map_large_blocks, set_threads
from ..progress import QUIET, Progress, log
from ..settings import setting
from .common import Model, ModelOptions, at_least, readable, say_usage


@dataclass(frozen=True)
class AnnotateOptions:
    """``input`` (``-``: standard input) labelled with ``bank`` into ``output`` (by its suffix:
    JSONL, CSV, TSV or Parquet; ``-``: JSONL on standard output). ``fields``: the input's own fields
    written beside the labels (None: all). ``adapt``: how many input items ``cm_best`` learns from
    first (0: none). ``engine`` ``local`` or ``ray`` (``workers``, ``ray_address``); ``threads``:
    this process's (default: :func:`~cmalign.process.default_threads`)."""

    input: str | Path
    bank: str | Path
    output: str | Path
    labels: str | Path | None = None
    text_field: str | None = None
    label_field: str | None = None
    fields: Sequence[str] | None = None
    resume: bool = False
    overwrite: bool = False
    dry_run: bool = False
    adapt: int = setting(SAMPLE, "cm_best learns from a seeded sample of N input items before labelling (default "
                         f"and most: {SAMPLE}; 0: off, as cm_stack)", metavar="N")
    batch_size: int = 2048
    engine: str = setting("local", "local: this process; ray: Ray workers, each loading the model once (pip install "
                          "'cmalign[ray]')", choices=("local", "ray"))
    workers: int = setting(2, "Ray workers")
    ray_address: str | None = setting(None, "a running Ray cluster (auto, ray://HOST:10001; default: $RAY_ADDRESS, "
                                      "else a local Ray started for this run)")
    threads: int | None = None
    model: ModelOptions = field(default_factory=ModelOptions)


@dataclass(frozen=True)
class AnnotateResult:
    method: str
    done_before: int = 0       # items an earlier run had labelled (resume)
    labelled: int = 0          # items labelled by this run
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0       # from the job's start
    calls: int = 0             # the annotator's item queries while labelling (learning from the corpus apart)
    learn_seconds: float = 0.0  # of ``seconds``: learning from a sample of the input (cm_best), a fixed cost
    label_seconds: float = 0.0  # of ``seconds``: the labelling itself
    plan: RunPlan | None = None
    output: str = ""

    def lines(self) -> list[str]:
        """What the job did, in words."""
        if self.plan is not None:
            return self.plan.lines()
        kept = f" ({self.done_before} done by an earlier run)" if self.done_before else ""
        learned = (f"; {self.learn_seconds:.1f}s of it learning from a sample of the input, then "
                   f"{self.labelled / self.label_seconds:.0f} items/s labelling") \
            if self.learn_seconds > 0 and self.label_seconds > 0 else ""
        return [f"annotated {self.labelled} items{kept} with {self.method} in {self.seconds:.1f}s from start "
                f"({self.labelled / self.seconds:.0f} items/s{learned}, {self.calls} annotator calls): "
                f"{describe(self.outcomes)}",
                f"wrote {'standard output' if is_stdio(self.output) else self.output}"]


def annotate(options: AnnotateOptions, progress: Progress = QUIET) -> AnnotateResult:
    """Label every item of ``options.input``; see :class:`AnnotateOptions`."""
    started = time.perf_counter()
    _check(options)
    with readable(options.input) as input_path, \
            LabelledOutput(options.output, resume=options.resume, overwrite=options.overwrite,
                           fields=options.fields) as output:
        if not options.dry_run:  # a bad output, one there already or a second writer: fail before loading
            output.claim(input_path, options.bank, options.labels,
                         *(state_path(options.bank, name) for name in METHODS))
        if options.engine == "ray" and not options.dry_run:  # a missing Ray or an unreachable cluster: first
            RayEngine.preflight(options.ray_address)
        bank = MemoryBank.load(options.bank)
        if options.labels:
            bank.check_label_set(read_labelset(options.labels), options.bank, options.labels)
        items = ItemFile(input_path, options.text_field, options.label_field, bank.labels, f"the bank {options.bank}")
        total = items.count()  # every line read and checked before any model loads; none kept
        progress.phase(f"read {total} items from {options.input}")
        threads = options.threads if options.threads is not None else default_threads()
        set_threads(threads)
        map_large_blocks()
        labeler = None
        try:  # a chat model's methods need only the bank: loading sends nothing, so a dry run can plan here
            model = Model(options.model, progress)
            if options.dry_run:  # an embeddings endpoint is sent nothing either, from the load on
                with model.encoder.embedder.dry():
                    labeler = model.labeler(bank, options.bank, chunk_size=options.batch_size)
                    return AnnotateResult(labeler.method, plan=labeler.plan(i.text for i in items))
            labeler = model.labeler(bank, options.bank, chunk_size=options.batch_size)
            if labeler.refit_reason:
                log.info("fitted %s on the bank's %d preference samples (%s; 'cmalign fit' with this method saves "
                         "it)", labeler.method, len(bank.samples), labeler.refit_reason)
            learning = time.perf_counter()
            learned = _learn(labeler, items, total, options.adapt, progress)
            labelling = time.perf_counter()
            engine = _engine(options, labeler, threads)
            asked = labeler.annotator.calls
            progress.phase(f"labelling {total} items with {labeler.method}")
            with progress.bar(total, "annotate") as bar:
                done, labelled, outcomes = labeler.label_into(output, items, input_path=input_path,
                                                              progress=bar.update, resumed=bar.skip, engine=engine)
        finally:
            if labeler is not None:
                say_usage(labeler.annotator)
    calls = engine.calls if engine is not None else labeler.annotator.calls - asked
    if engine is not None and engine.usage is not None:
        log.info("%s", engine.usage.summary(f"{labeler.annotator.identity} (Ray workers)"))
    end = time.perf_counter()
    return AnnotateResult(labeler.method, done, labelled, outcomes, end - started, calls,
                          learn_seconds=labelling - learning if learned else 0.0, label_seconds=end - labelling,
                          output=str(options.output))


def _check(options: AnnotateOptions) -> None:
    at_least("adapt", options.adapt, 0)
    for name in ("threads", "workers", "batch_size"):
        at_least(name, getattr(options, name), 1)
    if options.engine not in ("local", "ray"):
        raise CmalignError(f"{{=engine}} {options.engine!r}: expected local or ray")
    if options.engine == "ray" and options.model.backend.max_calls is not None:
        raise CmalignError("{=max_calls} is a guard of one process; with {=engine} ray each worker would "
                           "spend it in full: drop it, or label in this process")


def _learn(labeler: Labeler, items: ItemFile, total: int, size: int, progress: Progress) -> int:
    """Let a transductive method learn from a sample of the input before labelling it; how many
    items it learned from."""
    if labeler.method_.transductive and size > 0:
        progress.phase(f"{labeler.method} learning from a sample of up to {min(size, total)} of the {total} items")
    learned = labeler.adapt(items, total, size)
    if learned:
        log.info("%s learned from %d of the %d items: %s", labeler.method, learned, total,
                 labeler.method_.adaptation())
    return learned


def _engine(options: AnnotateOptions, labeler: Labeler, threads: int) -> RayEngine | None:
    if options.engine == "local":
        return None
    # each worker computes with this run's thread count: the same numbers as a local run, to the last bit
    factory = functools.partial(_worker_labeler, options.model, options.batch_size, labeler.method, labeler.portable())
    return RayEngine(factory, workers=options.workers, address=options.ray_address, threads=threads)


def _worker_labeler(model: ModelOptions, chunk_size: int, method: str, portable: tuple) -> Labeler:
    """The driver's labeller in a Ray worker, from the bank and state the driver holds (never
    refitted there, so every worker labels as the driver would)."""
    bank, arrays, values, pins = portable
    built = Model(model)
    return Labeler.rebuilt(built.annotator(bank), method, bank, arrays, values, pins, encoder=built.encoder,
                           chunk_size=chunk_size)
