"""The ``cmalign`` command: argparse, messages, tables and exit codes over the library.

Every input problem ends as one line on stderr naming the file, line or column, and exit code 2;
a traceback means a bug in cmalign.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from . import __version__
from .annotators.registry import SPECS, BackendOptions, is_chat, make_annotator, make_backend
from .data import (Budget, ItemFile, describe_bundled, load_datasets, parse_seed, read_items, read_labelset,
                   read_preferences)
from .encoder import default_encoder
from .engine import RayEngine
from .process import default_threads, map_large_blocks, set_threads, usable_cores
from .errors import CmalignError
from .evaluation import format_table, run_bench
from .files import writable_target
from .interchange import FORMATS, config_path, export
from .labeler import Labeler
from .method import METHODS, MemoryBank
from .method.transductive import SAMPLE as ADAPT_SAMPLE
from .output import LabelledOutput, describe
from .prompting import Decoding, Prompts
from .prompting.strategies import STRATEGIES, check_strategies
from .review import least_confident, out_of_fold, preference_rows, ranked, write_review
from .select import SELECTORS, check_selectors, choose, write_to_label
from .report import figures_folder, write_report

EXIT_USAGE = 2


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _progress() -> bool:
    return sys.stderr.isatty()


def _split_list(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _prompts(args: argparse.Namespace) -> Prompts:
    return Prompts.load(args.prompts) if args.prompts else Prompts()


def _decoding(args: argparse.Namespace) -> Decoding:
    return Decoding(temperature=args.temperature, top_p=args.top_p, seed=args.llm_seed, samples=args.samples)


def _annotator(args: argparse.Namespace, encoder, pool=None, backend_only: bool = False):
    """The annotator ``--annotator`` names (a chat model's backend alone with ``backend_only``)."""
    options = BackendOptions(**{name: getattr(args, name) for name in ("base_url", "api_key_env", "cache", "max_calls",
                                                                      "concurrency", "timeout", "retries", "device")})
    if backend_only:
        return make_backend(args.annotator, options) if is_chat(args.annotator) else None
    annotator = make_annotator(args.annotator, encoder, options, strategy=getattr(args, "strategy", "vanilla"),
                               prompts=_prompts(args), shots=args.shots, pool=pool,
                               decoding=_decoding(args))
    for part in (annotator, getattr(annotator, "backend", None)):
        if hasattr(part, "progress"):
            part.progress = _progress()
    return annotator


def _usage(annotator_or_backend) -> None:
    if hasattr(backend := getattr(annotator_or_backend, "backend", annotator_or_backend), "usage"):
        _say(backend.usage.summary(backend.model_id))


def cmd_datasets(args: argparse.Namespace) -> int:
    print(describe_bundled())
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    real = writable_target(args.output)  # a bad -o fails before any model is loaded
    if real.exists() and real.stat().st_size > 0 and not (args.overwrite or args.dry_run):
        raise CmalignError(f"{args.output}: exists already: --overwrite to replace the bank (and the method's "
                           "state beside it)")
    preferences = read_preferences(args.preferences, text_field=args.text_field, label_field=args.label_field,
                                   labels_path=args.labels)
    items, label_set = preferences.items, preferences.labels
    texts, y = [i.text for i in items], [i.label for i in items]
    encoder = default_encoder(args.device)
    annotator = _annotator(args, encoder, pool=(texts, y))
    labeler = Labeler(annotator, args.method, encoder=encoder)
    if args.dry_run:
        _say("\n".join(labeler.plan(texts, label_set=label_set).lines()))
        return 0
    try:
        labeler.fit(texts, y, label_set=label_set, budget=f"n={len(items)}")
    finally:
        _usage(annotator)
    written = labeler.save(args.output)
    skipped = (f" ({preferences.unannotated} Label Studio tasks without an annotation left out)"
               if preferences.unannotated else "")
    _say(f"fitted {labeler.method} on {len(items)} preference samples{skipped}, {len(label_set)} labels: "
         f"{labeler.bank_.describe()}")
    _say(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _labeler(args: argparse.Namespace, bank: MemoryBank) -> Labeler:
    """The labeller ``annotate`` runs: the bank, with the method's saved state where it matches."""
    encoder = default_encoder(args.device)
    annotator = _annotator(args, encoder, pool=([s.text for s in bank.samples], [s.label for s in bank.samples]))
    return Labeler.load(args.bank, annotator, args.method, encoder=encoder, bank=bank, chunk_size=args.batch_size)


def _worker_labeler(args: argparse.Namespace, method: str, portable: tuple) -> Labeler:
    """The same labeller in a Ray worker, from the bank and state the driver holds (never refitted
    there, so every worker labels as the driver would)."""
    bank, arrays, values, pins = portable
    encoder = default_encoder(args.device)
    annotator = _annotator(args, encoder, pool=([s.text for s in bank.samples], [s.label for s in bank.samples]))
    return Labeler.rebuilt(annotator, method, bank, arrays, values, pins, encoder=encoder, chunk_size=args.batch_size)


def _engine(args: argparse.Namespace, labeler: Labeler) -> RayEngine | None:
    if args.engine == "local":
        return None
    if args.max_calls is not None:
        raise CmalignError("--max-calls is a guard of one process; with --engine ray each worker would "
                           "spend it in full: drop it, or use --engine local")
    # each worker computes with this run's thread count: the same numbers as a local run, to the last bit
    return RayEngine(functools.partial(_worker_labeler, args, labeler.method, labeler.portable()),
                     workers=args.workers, address=args.ray_address, threads=args.threads)


def cmd_annotate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    args.threads = default_threads() if args.threads is None else args.threads
    if args.adapt < 0:
        raise CmalignError(f"--adapt {args.adapt}: must be 0 (off) or more")
    for flag, value in (("--threads", args.threads), ("--workers", args.workers), ("--batch-size", args.batch_size)):
        if value < 1:
            raise CmalignError(f"{flag} {value}: must be at least 1")
    with LabelledOutput(args.output, resume=args.resume, overwrite=args.overwrite) as output:
        if not args.dry_run:  # a bad -o, an output there already or a second writer: fail before loading
            output.claim(args.input)
        bank = MemoryBank.load(args.bank)
        if args.labels:
            bank.check_label_set(read_labelset(args.labels), args.bank, args.labels)
        items = ItemFile(Path(args.input), args.text_field, args.label_field, bank.labels, f"the bank {args.bank}")
        total = items.count()  # every line read and checked before any model loads; none kept
        set_threads(args.threads)
        map_large_blocks()
        labeler = None
        try:  # a chat model's methods need only the bank: loading sends nothing, so a dry run can plan here
            labeler = _labeler(args, bank)
            if args.dry_run:
                _say("\n".join(labeler.plan(i.text for i in items).lines()))
                return 0
            if labeler.refit_reason:
                _say(f"fitted {labeler.method} on the bank's {len(bank.samples)} preference samples "
                     f"({labeler.refit_reason}; 'cmalign fit --method {labeler.method}' saves it)")
            if args.engine == "ray":  # a missing Ray or an unreachable cluster: before any learning
                RayEngine.preflight(args.ray_address)
            learned = labeler.adapt(items, total, args.adapt)
            if learned:
                _say(f"{labeler.method} learned from {learned} of the {total} items: {labeler.method_.adaptation()}")
            engine = _engine(args, labeler)
            with tqdm(total=total, unit="item", desc="annotate", disable=not _progress()) as bar:
                done, labelled, outcomes = labeler.label_into(output, items, input_path=args.input,
                                                              progress=bar.update, engine=engine)
        finally:
            if labeler is not None:
                _usage(labeler.annotator)
    elapsed = time.perf_counter() - started
    calls = engine.calls if engine is not None else labeler.annotator.calls
    if engine is not None and engine.usage is not None:
        _say(engine.usage.summary(f"{labeler.annotator.identity} (Ray workers)"))
    kept = f" ({done} done by an earlier run)" if done else ""
    _say(f"annotated {labelled} items{kept} with {labeler.method} in {elapsed:.1f}s from start "
         f"({labelled / elapsed:.0f} items/s, {calls} annotator calls): {describe(outcomes)}")
    _say(f"wrote {args.output}")
    return 0


def _bank_labeler(args: argparse.Namespace, bank: MemoryBank, encoder) -> Labeler:
    annotator = _annotator(args, encoder, pool=([s.text for s in bank.samples], [s.label for s in bank.samples]))
    return Labeler.load(args.bank, annotator, args.method, encoder=encoder, bank=bank)


def _new_output(args: argparse.Namespace) -> None:
    """``-o`` can be written, and is not there yet unless ``--overwrite``: checked before any model loads."""
    if Path(os.path.realpath(args.output)).exists() and not args.overwrite:
        raise CmalignError(f"{args.output}: exists already: --overwrite to replace it")
    writable_target(args.output)


def _no_dry_run(args: argparse.Namespace) -> None:
    if args.dry_run:
        raise CmalignError(f"--dry-run plans annotate and fit; '{args.command}' has no dry run")


def cmd_select(args: argparse.Namespace) -> int:
    _no_dry_run(args)
    if args.n < 1:
        raise CmalignError(f"--n {args.n}: must be at least 1")
    _new_output(args)
    bank = MemoryBank.load(args.bank) if args.bank else None
    label_set = read_labelset(args.labels) if args.labels else None
    if bank is not None:
        if label_set is not None:
            bank.check_label_set(label_set, args.bank, args.labels)
        label_set = bank.labels
    pool = read_items(args.pool, text_field=args.text_field, label_field=args.label_field)
    encoder = default_encoder(args.device)
    labeler = _bank_labeler(args, bank, encoder) if bank is not None else None
    annotator = labeler.annotator if labeler is not None else _annotator(args, encoder) if label_set else None
    chosen = choose(pool, min(args.n, len(pool)), encoder, labeler=labeler, annotator=annotator, label_set=label_set,
                    selector=args.selector, seed=args.seed)
    write_to_label(args.output, chosen, overwrite=args.overwrite)
    how = args.selector if args.selector != "auto" else ("uncertain" if bank is not None else "cover")
    _say(f"chose {len(chosen)} of {len(pool)} items ({how}); fill in their label, then 'cmalign fit {args.output}'")
    _say(f"wrote {args.output}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    _no_dry_run(args)
    if args.n < 0:
        raise CmalignError(f"--n {args.n}: must be at least 0")
    _new_output(args)
    bank = MemoryBank.load(args.bank)
    if not bank.samples:
        raise CmalignError(f"{args.bank}: this bank holds only counts; a review needs the preference samples "
                           "(refit it with 'cmalign fit')")
    labelled = least_confident(args.labelled, args.n) if args.labelled else []  # a bad file fails before the model
    encoder = default_encoder(args.device)
    labeler = _bank_labeler(args, bank, encoder)
    probs = out_of_fold(labeler.method, labeler.annotator, encoder, [s.text for s in bank.samples],
                        [s.label for s in bank.samples], bank.labels, folds=args.folds, seed=args.seed)
    flagged, agreed = preference_rows(bank, probs)
    rows = ranked(flagged, labelled, agreed)
    write_review(args.output, rows)
    _say(f"{len(flagged)} of {len(bank.samples)} preference samples get another label from {labeler.method} fitted "
         f"without them (first in the file, the least probable given label first); then the {len(labelled)} least "
         "confident labelled items")
    _say(f"wrote {args.output}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    budgets = [Budget.parse(b) for b in _split_list(args.budget or ["0.01,0.05"])]
    seeds = [parse_seed(s) for s in _split_list(args.seed or ["0,1"])]
    strategies = check_strategies(_split_list(args.strategies or []))
    if strategies and not is_chat(args.annotator):
        raise CmalignError(f"--strategies needs a chat model (hf:PATH or openai:MODEL), not {args.annotator}")
    datasets = load_datasets(_split_list(args.dataset or []), args.data, text_field=args.text_field,
                             label_field=args.label_field)
    encoder = default_encoder(args.device)
    backend = _annotator(args, encoder, backend_only=True)
    annotator = None if backend else _annotator(args, encoder)
    selections = check_selectors(_split_list(args.select or ["random"]))
    runs = [(d, b, s) for d in datasets for b in budgets for s in seeds]
    results = []
    try:
        for result in tqdm(run_bench(runs, encoder, annotator=annotator,
                                     backend=backend, strategies=strategies, limit=args.limit, prompts=_prompts(args),
                                     k=args.shots, decoding=_decoding(args),
                                     selections=selections),
                           total=len(runs) * len(selections), desc="bench", unit="run", disable=not _progress()):
            results.append(result)
            if args.json:
                print(json.dumps(result.to_json()), flush=True)
    finally:
        _usage(backend or annotator)  # a chat model's, or a scorer's requests (openai-score:)
    if not args.json and results:
        print(format_table(results))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    labels = read_labelset(args.labels) if args.labels else None
    done = export(args.input, args.output, fmt=args.format, labels=labels, labels_source=args.labels,
                  overwrite=args.overwrite)
    _say(f"exported {done.items} items as {done.format}")
    _say(f"wrote {', '.join(str(p) for p in done.paths)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    written = write_report(args.output, args.bank, labelled=args.labelled, review=args.review, bench=args.bench,
                           gold_field=args.gold_field, overwrite=args.overwrite)
    _say(f"wrote {args.output} and {len(written) - 1} figures in {figures_folder(args.output)}")
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    print(_prompts(args).to_toml(), end="")
    return 0


LLM_OPTIONS = (  # flag, type, default, help: the options of every command that builds an annotator
    ("--base-url", str, None, "OpenAI-compatible server (default: $OPENAI_BASE_URL, else OpenAI)"),
    ("--api-key-env", str, "OPENAI_API_KEY", "environment variable holding the API key"),
    ("--cache", str, None, "response cache FILE (default: $XDG_CACHE_HOME/cmalign/responses.sqlite; 'none': none)"),
    ("--max-calls", int, None, "send at most N HTTP requests in this run, retries included: a hard cap on "
     "what a server can bill (cache hits are free)"),
    ("--concurrency", int, 8, "requests in flight at once"),
    ("--timeout", float, 60.0, "seconds per attempt"),
    ("--retries", int, 5, "retries per request"),
    ("--prompts", str, None, "your prompt templates (TOML; see 'cmalign prompts')"),
    ("--temperature", float, 0.0, "chat strategies: sampling temperature (0: greedy)"),
    ("--top-p", float, 1.0, "chat strategies: nucleus sampling mass"),
    ("--llm-seed", int, 0, "chat strategies: the model's sampling seed"),
    ("--samples", int, 1, "chat strategies: answers asked per prompt at --temperature (seeds --llm-seed, +1, ...), "
     "their vote the answer and their spread the evidence"),
    ("--shots", int, 5, "examples shown by fot"),
    ("--device", str, "cpu", "local models (hf:, hf-score:) and the encoder: cpu, cuda, mps"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmalign", description="Label text the way one user means it, learned "
                                     "from a few of their labels (Consistent Marginalization).")
    parser.add_argument("--version", action="version", version=f"cmalign {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help: str, *, model: bool = True, strategy: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        if not model:
            return p
        p.add_argument("--text-field", help="key or column holding the text (default: text, else input)")
        p.add_argument("--label-field", help="key or column holding the label (default: label)")
        p.add_argument("--annotator", default="embedded", help=f"the annotator: {SPECS}")
        llm = p.add_argument_group("LLM annotators (hf:PATH, hf-score:PATH, openai:MODEL, openai-score:MODEL)")
        add = llm.add_argument
        if strategy:
            add("--strategy", default="vanilla", choices=STRATEGIES, help="prompting strategy (default: vanilla)")
            add("--dry-run", action="store_true", help="send nothing: count the requests the cache cannot "
                "answer and their tokens")
            p.add_argument("--method", choices=list(METHODS), help="the method (default: cm_best, for every "
                           "annotator; the README's table says what each does)")
        for flag, kind, default, help in LLM_OPTIONS:
            add(flag, type=kind, default=default, help=help + ("" if default is None else f" (default: {default})"))
        return p

    command("datasets", cmd_datasets, "list the bundled datasets", model=False)
    p = command("fit", cmd_fit, "preference file (the user's labels) -> memory bank file (and the method's state)")
    p.add_argument("preferences", help="JSONL, CSV or Parquet with a text and a label per item, or a Label "
                   "Studio JSON export (its annotated tasks)")
    p.add_argument("-o", "--output", required=True, help="where to write the bank (JSON)")
    p.add_argument("--overwrite", action="store_true", help="the bank exists: replace it")
    p.add_argument("--labels", help="label-set file (one label a line; default: the labels in the data)")
    p = command("annotate", cmd_annotate, "unlabelled file -> JSONL of labels, using a bank")
    p.add_argument("input", help="JSONL, CSV or Parquet with a text per item, or a Label Studio JSON export")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    p.add_argument("-o", "--output", required=True, help="where to write the labelled JSONL")
    p.add_argument("--labels", help="label-set file; must match the bank's")
    p.add_argument("--batch-size", type=int, default=2048, help=argparse.SUPPRESS)
    p.add_argument("--adapt", type=int, default=ADAPT_SAMPLE, metavar="N", help="cm_best learns from a seeded "
                   f"sample of N input items before labelling (default and most: {ADAPT_SAMPLE}; 0: off, as cm_stack)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="the output exists: keep its lines, label the rest")
    again.add_argument("--overwrite", action="store_true", help="the output exists: replace it")
    run = p.add_argument_group("where the labelling runs")
    run.add_argument("--engine", choices=("local", "ray"), default="local", help="local: this process (the "
                     "default); ray: Ray workers, each loading the model once (pip install 'cmalign[ray]')")
    run.add_argument("--workers", type=int, default=2, help="Ray workers (default: 2)")
    run.add_argument("--ray-address", help="a running Ray cluster (auto, ray://HOST:10001; default: "
                     "$RAY_ADDRESS, else a local Ray started for this run)")
    run.add_argument("--threads", type=int, help="threads for the model and linear algebra in this process "
                     f"(default: $OMP_NUM_THREADS where set, else the cores it may use: here {usable_cores()})")
    p = command("select", cmd_select, "unlabelled pool -> the items to label next (JSONL/CSV with a label to fill)")
    p.add_argument("pool", help="JSONL or CSV with a text per item")
    p.add_argument("--n", type=int, required=True, help="how many items to choose")
    p.add_argument("-o", "--output", required=True, help="where to write them (.jsonl, .csv or .tsv)")
    p.add_argument("--bank", help="the bank of the labels given so far (then: where the method is least sure)")
    p.add_argument("--labels", help="label-set file: without a bank, cover reads the annotator's scores over it too")
    p.add_argument("--selector", choices=("auto", *SELECTORS), default="auto", help="auto: cover without a bank, "
                   "uncertain with one (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0): the same seed, the same choice")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p = command("review", cmd_review, "bank (and an annotate output) -> ranked file of what a person should check")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    p.add_argument("--labelled", help="an annotate output: its least confident items are added")
    p.add_argument("--n", type=int, default=100, help="least confident labelled items to add (default: 100)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold splits (default: 0)")
    p.add_argument("-o", "--output", required=True, help="where to write the review (JSONL)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p = command("bench", cmd_bench, "the paper's protocol: datasets x budgets x seeds -> accuracy table",
                strategy=False)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dataset", action="append", help="bundled dataset(s), comma-separated (default: all)")
    where.add_argument("--data", help="a folder with large.jsonl and/or small.jsonl of your own")
    p.add_argument("--budget", action="append", help="fraction(s) of the pool the user labels, e.g. 0.01,0.05 "
                   "(the default), or n=500")
    p.add_argument("--seed", action="append", help="seed(s), e.g. 0,1 (the default)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    p.add_argument("--limit", type=int, help="evaluate on a seeded subset of this many items (slow annotators)")
    p.add_argument("--strategies", action="append", metavar="LIST", help=f"chat models: strategies to compare "
                   f"({','.join(STRATEGIES)}; default: vanilla); each gives X and X+M for every method M that asks the annotator")
    p.add_argument("--select", action="append", metavar="LIST", help=f"how the preference sample is drawn: "
                   f"{', '.join(SELECTORS)} or all (default: random, the paper's protocol); each run per selector")
    p = command("export", cmd_export, "labelled JSONL (annotate's output) -> Parquet, CSV, JSONL or Label Studio "
                "tasks", model=False)
    p.add_argument("input", help="labelled JSONL, e.g. what 'cmalign annotate' wrote")
    p.add_argument("-o", "--output", required=True, help="where to write the export; .json is a Label Studio tasks "
                   f"file (its labelling config goes beside it, as {config_path('OUT.json')})")
    p.add_argument("--format", choices=FORMATS, help="the format (default: from the output's suffix: .parquet, "
                   ".csv, .jsonl, .json)")
    p.add_argument("--labels", help="label-set file: the Label Studio choices (default: the labels in the data)")
    p.add_argument("--overwrite", action="store_true", help="the output exists: replace it")
    p = command("report", cmd_report, "bank (+ labelled output, review, bench) -> one self-contained HTML page",
                model=False)
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    p.add_argument("--labelled", metavar="OUT.jsonl", help="output of 'cmalign annotate' (read as a stream)")
    p.add_argument("--review", metavar="REVIEW.jsonl", help="output of 'cmalign review'")
    p.add_argument("--bench", metavar="BENCH.jsonl", help="output of 'cmalign bench --json'")
    p.add_argument("--gold-field", default="gold", help="key of a gold label in the labelled lines, for a "
                   "reliability diagram without a review (default: gold)")
    p.add_argument("-o", "--output", required=True, help="the HTML page; its figures go into NAME_files/ beside it")
    p.add_argument("--overwrite", action="store_true", help="the page exists: replace it and its figures")
    p = command("prompts", cmd_prompts, "print the prompt templates (TOML) to edit and pass with --prompts",
                model=False)
    p.add_argument("--prompts", metavar="FILE", help="show the defaults with this file's templates applied")
    return parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting's flag by its parameter (the argparse dest): how an error that names one says it."""
    flags: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags.update(_flags(sub))
        elif action.option_strings:
            flags.setdefault(action.dest, max(action.option_strings, key=len))
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads that wait for work sleep instead of spinning (read when torch loads, later):
    # beside other jobs on a shared machine, spinning threads took the cores the work needed
    # (the README's "Threads" measures it). A value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CmalignError as exc:
        _say(f"cmalign: error: {exc.render(_flags(parser))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("cmalign: interrupted")
        return 130
    except BrokenPipeError:
        return 0
