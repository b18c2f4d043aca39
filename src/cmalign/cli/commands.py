"""One function per command: the parsed flags -> the job's options -> the job -> what it says.

Every job is a library call (:mod:`cmalign.jobs`); nothing here decides what the library should do.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..annotators.registry import BackendOptions
from ..data import Budget, describe_bundled, parse_seed
from ..evaluation import format_table
from ..jobs import (AnnotateOptions, BenchOptions, ExportOptions, FitOptions, ModelOptions, ReportOptions,
                    ReviewOptions, SelectOptions, annotate, bench, export_file, fit, report, review, select_items)
from ..output import describe
from ..progress import Progress, log
from ..prompting import Decoding, Prompts
from ..report import figures_folder


def _list(values: list[str] | None, default: str = "") -> list[str]:
    return [v.strip() for value in (values or [default]) for v in value.split(",") if v.strip()]


def model_options(args: argparse.Namespace) -> ModelOptions:
    backend = BackendOptions(base_url=args.base_url, api_key_env=args.api_key_env, cache=args.cache,
                             max_calls=args.max_calls, concurrency=args.concurrency, timeout=args.timeout,
                             retries=args.retries, device=args.device)
    decoding = Decoding(temperature=args.temperature, top_p=args.top_p, seed=args.llm_seed, samples=args.samples)
    return ModelOptions(annotator=args.annotator, method=getattr(args, "method", None),
                        strategy=getattr(args, "strategy", "vanilla"), backend=backend, prompts=args.prompts,
                        decoding=decoding, shots=args.shots, device=args.device)


def _plan(result) -> bool:
    if result.plan is not None:
        log.warning("%s", "\n".join(result.plan.lines()))
    return result.plan is not None


def cmd_datasets(args: argparse.Namespace, progress: Progress) -> int:
    print(describe_bundled())
    return 0


def cmd_fit(args: argparse.Namespace, progress: Progress) -> int:
    result = fit(FitOptions(args.preferences, args.output, labels=args.labels, text_field=args.text_field,
                            label_field=args.label_field, overwrite=args.overwrite, dry_run=args.dry_run,
                            model=model_options(args)), progress)
    if _plan(result):
        return 0
    skipped = (f" ({result.unannotated} Label Studio tasks without an annotation left out)"
               if result.unannotated else "")
    log.info("fitted %s on %d preference samples%s, %d labels: %s", result.method, result.samples, skipped,
             len(result.labels), result.described)
    log.info("wrote %s", ", ".join(str(p) for p in result.written))
    return 0


def cmd_annotate(args: argparse.Namespace, progress: Progress) -> int:
    result = annotate(AnnotateOptions(
        args.input, args.bank, args.output, labels=args.labels, text_field=args.text_field,
        label_field=args.label_field, fields=args.fields, resume=args.resume, overwrite=args.overwrite,
        dry_run=args.dry_run, adapt=args.adapt, batch_size=args.batch_size, engine=args.engine,
        workers=args.workers, ray_address=args.ray_address, threads=args.threads, model=model_options(args)), progress)
    if _plan(result):
        return 0
    kept = f" ({result.done_before} done by an earlier run)" if result.done_before else ""
    log.info("annotated %d items%s with %s in %.1fs from start (%.0f items/s, %d annotator calls): %s",
             result.labelled, kept, result.method, result.seconds, result.labelled / result.seconds, result.calls,
             describe(result.outcomes))
    log.info("wrote %s", "standard output" if args.output == "-" else args.output)
    return 0


def cmd_select(args: argparse.Namespace, progress: Progress) -> int:
    result = select_items(SelectOptions(args.pool, args.output, args.n, bank=args.bank, labels=args.labels,
                                        selector=args.selector, seed=args.seed, fields=args.fields,
                                        text_field=args.text_field, label_field=args.label_field,
                                        overwrite=args.overwrite, model=model_options(args)), progress)
    rounds = "EARLIER_ROUND_FILES... " if args.bank else ""
    log.info("chose %d of %d items (%s); fill in their label, then 'cmalign fit %s%s -o BANK' (every round's "
             "files, so that the bank keeps the labels given before)", result.chosen, result.pool, result.selector,
             rounds, args.output)
    log.info("wrote %s", args.output)
    return 0


def cmd_review(args: argparse.Namespace, progress: Progress) -> int:
    result = review(ReviewOptions(args.bank, args.output, labelled=args.labelled, n=args.n, folds=args.folds,
                                  seed=args.seed, overwrite=args.overwrite, model=model_options(args)), progress)
    log.info("%d of %d preference samples get another label from %s fitted without them (first in the file, the "
             "least probable given label first); then the %d least confident labelled items", result.flagged,
             result.samples, result.method, result.labelled)
    log.info("wrote %s", args.output)
    return 0


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


def cmd_export(args: argparse.Namespace, progress: Progress) -> int:
    done = export_file(ExportOptions(args.input, args.output, format=args.format, bank=args.bank, labels=args.labels,
                                     overwrite=args.overwrite), progress)
    log.info("exported %d items as %s", done.items, done.format)
    log.info("wrote %s", ", ".join(str(p) for p in done.paths))
    return 0


def cmd_report(args: argparse.Namespace, progress: Progress) -> int:
    written = report(ReportOptions(args.bank, args.output, labelled=args.labelled, review=args.review,
                                   bench=args.bench, gold_field=args.gold_field, overwrite=args.overwrite), progress)
    log.info("wrote %s and %d figures in %s", args.output, len(written) - 1, figures_folder(args.output))
    return 0


def cmd_prompts(args: argparse.Namespace, progress: Progress) -> int:
    sys.stdout.write((Prompts.load(args.prompts) if args.prompts else Prompts()).to_toml())
    return 0


COMMANDS = {name.removeprefix("cmd_"): func for name, func in globals().items() if name.startswith("cmd_")}
