"""One function per command: the parsed flags -> the job's options -> the job -> what it did.

Every job is a library call (:mod:`cmalign.jobs`) on options whose parameters the flags are named
after; nothing here decides what the library should do.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys

from ..annotators.registry import BackendOptions
from ..data import Budget, describe_bundled, parse_seed
from ..errors import shown
from ..evaluation import format_table
from ..jobs import (AnnotateOptions, BenchOptions, ExportOptions, FitOptions, ModelOptions, ReportOptions,
                    ReviewOptions, SelectOptions, WriteExampleOptions, annotate, bench, export_file, fit, report,
                    review, select_items, write_example)
from ..progress import Progress, log
from ..serve import ServeOptions, serve
from ..prompting import Decoding, Prompts


def _list(values: list[str] | None, default: str = "") -> list[str]:
    return [v.strip() for value in (values or [default]) for v in value.split(",") if v.strip()]


def _build(cls, args: argparse.Namespace, **given):
    """``cls`` (a job's options) from the flags named as its parameters, and ``given``."""
    names = {f.name for f in dataclasses.fields(cls)} - given.keys()
    return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)}, **given)


def model_options(args: argparse.Namespace) -> ModelOptions:
    backend = _build(BackendOptions, args, batch_size=BackendOptions().batch_size)
    decoding = Decoding(temperature=args.temperature, top_p=args.top_p, seed=args.llm_seed, samples=args.samples)
    return _build(ModelOptions, args, backend=backend, decoding=decoding)


def _run(job, options_class, args: argparse.Namespace, progress: Progress, **given) -> int:
    """The job on options built from the flags; what it did, a line at a time, to the log."""
    model = {"model": model_options(args)} if hasattr(args, "annotator") else {}
    options = _build(options_class, args, **model, **given)
    for line in job(options, progress).lines():
        log.info("%s", shown(line, args.names))
    return 0


def cmd_datasets(args: argparse.Namespace, progress: Progress) -> int:
    if args.write is None:
        print(describe_bundled())
        return 0
    name, folder = args.write
    return _run(write_example, WriteExampleOptions, args, progress, name=name, folder=folder)


def cmd_bench(args: argparse.Namespace, progress: Progress) -> int:
    options = BenchOptions(datasets=_list(args.dataset), folder=args.data,
                           budgets=[Budget.parse(b) for b in _list(args.budget, "0.01,0.05")],
                           seeds=[parse_seed(s) for s in _list(args.seed, "0,1")], strategies=_list(args.strategies),
                           selections=_list(args.select, "random"), limit=args.limit, text_field=args.text_field,
                           label_field=args.label_field, model=model_options(args))
    results = []
    for result in bench(options, progress):
        results.append(result)
        if args.json:
            print(json.dumps(result.to_json()), flush=True)
    if not args.json and results:
        print(format_table(results))
    return 0


def cmd_serve(args: argparse.Namespace, progress: Progress) -> int:
    serve(_build(ServeOptions, args, model=model_options(args)), progress)
    return 0


def cmd_prompts(args: argparse.Namespace, progress: Progress) -> int:
    sys.stdout.write((Prompts.load(args.prompts) if args.prompts else Prompts()).to_toml())
    return 0


JOBS = {"fit": (fit, FitOptions), "annotate": (annotate, AnnotateOptions), "select": (select_items, SelectOptions),
        "review": (review, ReviewOptions), "export": (export_file, ExportOptions), "report": (report, ReportOptions)}
COMMANDS = {**{name: functools.partial(_run, job, options) for name, (job, options) in JOBS.items()},
            **{name.removeprefix("cmd_"): func for name, func in globals().items() if name.startswith("cmd_")}}
