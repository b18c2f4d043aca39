"""The ``cmalign`` command: a thin layer over the library.

Every input problem ends as one line on stderr naming the file, line or column, and exit code 2;
a traceback means a bug in cmalign.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from . import __version__
from .annotators.registry import SPECS
from .annotators.strategies import STRATEGIES
from .errors import CmalignError, DataError

EXIT_USAGE = 2


def _progress() -> bool:
    return sys.stderr.isatty()


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _backend_options(args: argparse.Namespace):
    from .annotators.registry import BackendOptions

    for flag, value, low in (("--max-calls", args.max_calls, 0), ("--concurrency", args.concurrency, 1),
                             ("--retries", args.retries, 0), ("--shots", args.shots, 0)):
        if value is not None and value < low:
            raise CmalignError(f"{flag} {value} is below {low}")
    if not args.timeout > 0:
        raise CmalignError(f"--timeout {args.timeout:g} must be above 0")
    return BackendOptions(base_url=args.base_url, api_key_env=args.api_key_env, cache=args.cache,
                          max_calls=args.max_calls, concurrency=args.concurrency, timeout=args.timeout,
                          retries=args.retries, device=args.device)


def _prompts(args: argparse.Namespace):
    from .annotators.prompts import Prompts

    return Prompts.load(args.prompts) if args.prompts else Prompts()


def _decoding(args: argparse.Namespace):
    from .annotators.strategies import Decoding

    return Decoding(temperature=args.temperature, top_p=args.top_p, seed=args.llm_seed)


def _annotator(args: argparse.Namespace, pool: tuple[Sequence[str], Sequence[str]] | None = None):
    """(annotator, the shared sentence encoder, chat backend or None) for ``--annotator``.

    A chat model answers through ``--strategy``, retrieving its examples from ``pool`` (texts,
    labels): the preference samples. Without a pool (bench) only its backend is built.
    """
    from .annotators.embedding import EmbeddingAnnotator, SentenceEncoder
    from .annotators.registry import is_chat, make_annotator, make_backend
    from .annotators.strategies import ChatAnnotator, ExampleRetriever

    encoder = SentenceEncoder()
    if not is_chat(args.annotator):
        annotator = make_annotator(args.annotator, encoder, _backend_options(args))
        if isinstance(annotator, EmbeddingAnnotator):
            annotator.progress = _progress()
        return annotator, encoder, None
    backend = make_backend(args.annotator, _backend_options(args))
    backend.progress = _progress()
    if pool is None:
        return None, encoder, backend
    annotator = ChatAnnotator(backend, args.strategy, prompts=_prompts(args), k=args.shots,
                              retriever=ExampleRetriever(encoder, *pool), decoding=_decoding(args))
    return annotator, encoder, backend


def _report_usage(backend) -> None:
    if backend is not None:
        _say(backend.usage.summary(backend.model_id))


def _dry_run(args: argparse.Namespace, annotator, backend, texts: Sequence[str], labels, reasks: bool) -> int:
    """Annotate ``texts`` with the backend in dry-run mode and say what a real run would send.

    The requests of the first round are counted exactly (those already cached are free); the ones
    that depend on what the model answers (a refine revision, a CM re-ask) are bounded, not guessed.
    """
    if backend is None:
        raise CmalignError(f"--dry-run counts requests to a chat model (hf:PATH, openai:MODEL); "
                           f"{args.annotator} sends none")
    backend.dry_run = True
    annotator.annotate(texts, labels)
    _say(backend.plan.summary(backend.model_id, backend.usage, args.max_calls))
    later = []
    if args.strategy == "refine":
        later.append("a revision for each item the model judges wrong")
    if reasks:
        later.append(f"a {args.strategy} re-ask for each item whose answer has several candidates (--method cm)")
    if later and backend.plan.requests:
        _say(f"not counted, as they depend on the answers: {' and '.join(later)} (at most one of each "
             f"per item: {len(texts)} items)")
    return 0


def _split_list(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


# -- datasets ----------------------------------------------------------------------------------

def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import bundled_names, load_bundled

    rows = []
    for name in bundled_names():
        ds = load_bundled(name)
        rows.append((name, len(ds.labels), "-" if ds.large is None else len(ds.large), len(ds.small)))
    print(f"{'dataset':<18} {'labels':>6} {'large':>7} {'small':>7}")
    for name, n_labels, large, small in rows:
        print(f"{name:<18} {n_labels:>6} {large:>7} {small:>7}")
    from importlib import resources

    print(f"\nsources and licences: {resources.files('cmalign.data') / 'bundled' / 'SOURCES.md'}")
    return 0


# -- fit ---------------------------------------------------------------------------------------

def cmd_fit(args: argparse.Namespace) -> int:
    from .data import check_labels, read_items, read_labelset
    from .labels import LabelSet
    from .method import ConsistentMarginalization

    items = read_items(args.preferences, text_field=args.text_field, label_field=args.label_field,
                       require_labels=True)
    if args.labels:
        label_set = read_labelset(args.labels)
        items = check_labels(items, label_set, args.preferences, labels_source=args.labels)
    else:
        label_set = LabelSet.of(item.label for item in items)
    texts, labels = [i.text for i in items], [i.label for i in items]
    annotator, _, backend = _annotator(args, pool=(texts, labels))
    if args.dry_run:
        return _dry_run(args, annotator, backend, texts, label_set, reasks=False)
    try:
        cm = ConsistentMarginalization(annotator).fit(texts, labels, label_set=label_set, budget=f"n={len(items)}",
                                                      progress=_progress())
    finally:
        _report_usage(backend)
    cm.bank_.save(args.output)
    entries = cm.bank_.entries.values()
    ambiguous = sum(len(e.counts) >= 2 for e in entries)
    remaps = sum(len(e.counts) == 1 and e.candidates[0] != e.response for e in entries)
    _say(f"fitted on {len(items)} preference samples, {len(label_set)} labels: {len(entries)} distinct "
         f"answers; the cm rules re-ask within {ambiguous} of them and remap {remaps}")
    _say(f"wrote {args.output}")
    return 0


# -- annotate ----------------------------------------------------------------------------------

RULES = {"cm": "paper", "cm_remap": "remap"}
VARIANTS = ("cm_marg", "cm_ibank", "cm_best")


def _variant(name: str, annotator, encoder):
    from .method import CombinedCM, MarginalCM

    if name == "cm_best":
        return CombinedCM(annotator, encoder=encoder)
    return MarginalCM(annotator, instance_dependent=name == "cm_ibank", encoder=encoder)


def cmd_annotate(args: argparse.Namespace) -> int:
    from .data import read_items, read_labelset
    from .method import MemoryBank

    bank = MemoryBank.load(args.bank)
    if args.labels:
        given = read_labelset(args.labels)
        if given.labels != bank.labels.labels:
            missing = [l for l in given.labels if l not in bank.labels][:3]
            extra = [l for l in bank.labels.labels if l not in given][:3]
            raise DataError(f"the bank was fitted on a different label set than {args.labels} "
                            f"(only in the label file: {missing}, only in the bank: {extra})", args.bank)
    from .annotators.registry import is_chat

    if args.method is None:
        args.method = "cm_remap" if is_chat(args.annotator) else "cm_best"
    if args.method in VARIANTS and is_chat(args.annotator):
        raise CmalignError(f"--method {args.method} needs an annotator with a score per label (embedded, "
                           f"hf-score:PATH); {args.annotator} answers in text: use --method cm or cm_remap")
    if args.method in VARIANTS and not bank.samples:
        raise DataError(f"--method {args.method} needs the preference samples, and this bank holds only "
                        "counts; refit it with 'cmalign fit' or use --method cm_remap", args.bank)
    items = read_items(args.input, text_field=args.text_field, label_field=args.label_field)
    for item in items:
        if item.label is not None and bank.labels.canonical(item.label) is None:
            raise DataError(f"label {item.label!r} is not in the label set of the bank {args.bank} "
                            "(was the bank fitted on a different label set?)", args.input, item.line)
    annotator, encoder, backend = _annotator(args, pool=([s.text for s in bank.samples],
                                                         [s.label for s in bank.samples]))
    if args.dry_run:
        return _dry_run(args, annotator, backend, [i.text for i in items], bank.labels,
                        reasks=args.method == "cm")
    try:
        return _annotate_items(args, bank, items, annotator, encoder)
    finally:
        _report_usage(backend)


def _annotate_items(args, bank, items, annotator, encoder) -> int:
    from .method import ConsistentMarginalization

    labels = bank.labels
    # built for every method: from_bank is also where a bank from another annotator is refused
    cm = ConsistentMarginalization.from_bank(annotator, bank, rule=RULES.get(args.method, "remap"),
                                             batch_size=args.batch_size)
    model = None
    if args.method in VARIANTS:
        model = _variant(args.method, annotator, encoder).fit([s.text for s in bank.samples],
                                                     [s.label for s in bank.samples], labels)

    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    output = Path(args.output)
    with open(output, "w", encoding="utf-8") as out, \
            tqdm(total=len(items), unit="item", desc="annotate", disable=not _progress()) as bar:
        for start in range(0, len(items), args.batch_size):
            chunk = items[start:start + args.batch_size]
            texts = [i.text for i in chunk]
            answers = annotator.annotate(texts, labels)
            if model is None:
                decisions = cm.decide(texts, answers=answers)
                extra = [{"action": d.action.value, "label": d.label} for d in decisions]
            else:
                probs = model.predict_proba(texts, answers=answers)
                extra = [{"label": labels.labels[j], "confidence": round(float(p[j]), 4)}
                         for p, j in zip(probs, probs.argmax(axis=1))]
            for item, answer, fields in zip(chunk, answers, extra):
                outcomes[fields.get("action") or ("changed" if fields["label"] != answer.label else "kept")] += 1
                out.write(json.dumps({
                    "line": item.line, "text": item.text,
                    "annotator_answer": answer.raw, "annotator_label": answer.label,
                    "candidates": list(bank.candidates(answer.key)), "method": args.method, **fields,
                }, ensure_ascii=False) + "\n")
            out.flush()  # what is written stays written if a later chunk fails
            bar.update(len(chunk))
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{n} {a}" for a, n in sorted(outcomes.items()))
    _say(f"annotated {len(items)} items with {args.method} in {elapsed:.1f}s "
         f"({len(items) / max(elapsed, 1e-9):.0f} items/s, {annotator.calls} annotator calls): {summary}")
    _say(f"wrote {output}")
    return 0


# -- bench -------------------------------------------------------------------------------------

def _format_table(results: list) -> str:
    methods = list(results[0].methods)
    width = {m: max(8, len(m)) for m in methods}
    head = f"{'dataset':<18} {'budget':>6} {'seed':>4} {'n_pref':>6} {'n_eval':>6}  " + \
        "  ".join(f"{m:>{width[m]}}" for m in methods)
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.dataset:<18} {r.budget:>6} {r.seed:>4} {r.n_preference:>6} {r.n_eval:>6}  "
                     + "  ".join(f"{r.methods[m].accuracy:>{width[m]}.3f}" for m in methods))
    groups: dict[tuple[str, str], list] = {}
    for r in results:
        groups.setdefault((r.dataset, r.budget), []).append(r)
    if any(len(g) > 1 for g in groups.values()):
        lines += ["", "mean over seeds", "-" * len(head)]
        for (dataset, budget), runs in groups.items():
            lines.append(f"{dataset:<18} {budget:>6} {len(runs):>4} {'':>6} {'':>6}  " + "  ".join(
                f"{statistics.fmean(r.methods[m].accuracy for r in runs):>{width[m]}.3f}" for m in methods))
    last = results[-1]
    lines += ["", "annotator calls per evaluation item (last run): " + ", ".join(
        f"{m} {last.methods[m].annotator_calls / last.n_eval:.2f}" for m in methods)]
    if any(m.annotator_tokens is not None for m in last.methods.values()):
        lines.append("tokens per evaluation item (last run): " + ", ".join(
            f"{m} {last.methods[m].annotator_tokens / last.n_eval:.0f}" for m in methods
            if last.methods[m].annotator_tokens is not None))
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    from .data import Budget, bundled_names, load_bundled, load_folder
    from .evaluation import run_protocol

    budgets = [Budget.parse(b) for b in _split_list(args.budget)]
    try:
        seeds = [int(s) for s in _split_list(args.seed)]
    except ValueError:
        raise DataError(f"seeds must be whole numbers, got {args.seed}") from None
    if args.data:
        datasets = [load_folder(args.data, text_field=args.text_field, label_field=args.label_field)]
    else:
        names = _split_list(args.dataset) if args.dataset else bundled_names()
        datasets = [load_bundled(name) for name in names]
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit {args.limit} is below 1")
    from .annotators.registry import is_chat
    from .annotators.strategies import STRATEGIES
    from .evaluation import run_strategies

    strategies = _split_list(args.strategies or [])
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise CmalignError(f"unknown strategy {unknown[0]!r}; strategies: {', '.join(STRATEGIES)}")
    chat = is_chat(args.annotator)
    if strategies and not chat:
        raise CmalignError(f"--strategies needs a chat model (hf:PATH or openai:MODEL), not {args.annotator}")
    annotator, encoder, backend = _annotator(args)
    prompts, decoding = (_prompts(args), _decoding(args)) if chat else (None, None)  # read once, not per run
    results = []
    runs = [(d, b, s) for d in datasets for b in budgets for s in seeds]
    try:
        for dataset, budget, seed in tqdm(runs, desc="bench", unit="run", disable=not _progress()):
            if chat:
                result = run_strategies(dataset, budget, seed, backend, strategies or ["vanilla"], encoder,
                                        limit=args.limit, prompts=prompts, decoding=decoding, k=args.shots)
            else:
                result = run_protocol(dataset, budget, seed, annotator, encoder, limit=args.limit)
            results.append(result)
            if args.json:
                print(json.dumps(result.to_json()), flush=True)
    finally:
        _report_usage(backend)
    if not args.json and results:
        print(_format_table(results))
    return 0


# -- prompts -----------------------------------------------------------------------------------

def cmd_prompts(args: argparse.Namespace) -> int:
    print(_prompts(args).to_toml(), end="")
    return 0


# -- entry point -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmalign", description="Label text the way one user means it, learned from a few of their "
        "labels (Consistent Marginalization).")
    parser.add_argument("--version", action="version", version=f"cmalign {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def fields(p: argparse.ArgumentParser, strategy: bool = True) -> None:
        p.add_argument("--text-field", help="key or column holding the text (default: text, else input)")
        p.add_argument("--label-field", help="key or column holding the label (default: label)")
        p.add_argument("--annotator", default="embedded", help=f"the annotator: {SPECS}")
        llm = p.add_argument_group("LLM annotators (hf:PATH, hf-score:PATH, openai:MODEL)")
        if strategy:
            llm.add_argument("--strategy", default="vanilla", choices=STRATEGIES,
                             help="prompting strategy (default: vanilla)")
        llm.add_argument("--base-url", help="OpenAI-compatible server (default: $OPENAI_BASE_URL, else OpenAI)")
        llm.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                         help="environment variable holding the API key (default: OPENAI_API_KEY)")
        llm.add_argument("--cache", metavar="FILE", help="response cache (default: "
                         "$XDG_CACHE_HOME/cmalign/responses.sqlite; 'none' for none)")
        llm.add_argument("--max-calls", type=int, metavar="N",
                         help="stop before sending more than N requests in this run (cache hits are free)")
        if strategy:
            llm.add_argument("--dry-run", action="store_true",
                             help="send nothing: count the requests the cache cannot answer and their tokens")
        llm.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default: 8)")
        llm.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt (default: 60)")
        llm.add_argument("--retries", type=int, default=5, help="retries per request (default: 5)")
        llm.add_argument("--prompts", metavar="FILE", help="your prompt templates (TOML; see 'cmalign prompts')")
        llm.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0, greedy)")
        llm.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1)")
        llm.add_argument("--llm-seed", type=int, default=0, help="the model's sampling seed (default: 0)")
        llm.add_argument("--shots", type=int, default=5, help="examples shown by fot (default: 5)")
        llm.add_argument("--device", default="cpu", help="local models (hf:, hf-score:): cpu (default), cuda, mps")

    p = sub.add_parser("datasets", help="list the bundled datasets")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("fit", help="preference file (the user's labels) -> memory bank file")
    p.add_argument("preferences", help="JSONL or CSV with a text and a label per item")
    p.add_argument("-o", "--output", required=True, help="where to write the bank (JSON)")
    p.add_argument("--labels", help="label-set file (one label a line; default: the labels in the data)")
    fields(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("annotate", help="unlabelled file -> JSONL of CM labels, using a bank")
    p.add_argument("input", help="JSONL or CSV with a text per item")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    p.add_argument("-o", "--output", required=True, help="where to write the labelled JSONL")
    p.add_argument("--method", choices=[*RULES, *VARIANTS], default=None,
                   help="cm_best (default for scoring annotators): the combined model, with a confidence "
                   "per item; cm_remap (default for chat models); cm: the "
                   "paper's rule; cm_remap: the rule plus single-candidate remap; cm_marg, cm_ibank: "
                   "probabilistic marginalisation (global or instance-dependent bank)")
    p.add_argument("--labels", help="label-set file; must match the bank's")
    p.add_argument("--batch-size", type=int, default=2048, help=argparse.SUPPRESS)
    fields(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("bench", help="the paper's protocol: datasets x budgets x seeds -> accuracy table")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dataset", action="append", help="bundled dataset(s), comma-separated "
                       "(default: all; see 'cmalign datasets')")
    where.add_argument("--data", help="a folder with large.jsonl and/or small.jsonl of your own")
    p.add_argument("--budget", action="append", default=None,
                   help="fraction(s) of the pool the user labels, e.g. 0.01,0.05 (default), or n=500")
    p.add_argument("--seed", action="append", default=None, help="seed(s), e.g. 0,1 (default)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    p.add_argument("--limit", type=int, help="evaluate on a seeded subset of this many items (slow annotators)")
    p.add_argument("--strategies", action="append", metavar="LIST",
                   help=f"chat models: strategies to compare, comma-separated ({','.join(STRATEGIES)}; "
                   "default: vanilla); each gives X, X+cm and X+cm_remap")
    fields(p, strategy=False)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("prompts", help="print the prompt templates (TOML) to edit and pass with --prompts")
    p.add_argument("--prompts", metavar="FILE", help="show the defaults with this file's templates applied")
    p.set_defaults(func=cmd_prompts)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        args.budget = args.budget or ["0.01,0.05"]
        args.seed = args.seed or ["0,1"]
    try:
        return args.func(args)
    except CmalignError as exc:
        _say(f"cmalign: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("cmalign: interrupted")
        return 130
    except BrokenPipeError:
        return 0
