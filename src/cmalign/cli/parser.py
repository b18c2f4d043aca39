"""The command line's flags: one parser per command, built from shared option groups, each added
only where it applies (the LLM options under their own heading); choices come from the registries."""

from __future__ import annotations

import argparse

from .. import __version__
from ..annotators.registry import SPECS
from ..embedders import DEFAULT, ENCODERS
from ..interchange import FORMATS, config_path
from ..method import METHODS
from ..method.transductive import SAMPLE
from ..process import usable_cores
from ..prompting.strategies import STRATEGIES
from ..select import SELECTORS

LLM_OPTIONS = (  # flag, type, default, help: how an LLM annotator is reached, paid for and asked
    ("--base-url", str, None, "OpenAI-compatible server (default: $OPENAI_BASE_URL, else OpenAI)"),
    ("--api-key-env", str, "OPENAI_API_KEY", "environment variable holding the API key"),
    ("--cache", str, None, "response cache FILE (default: $XDG_CACHE_HOME/cmalign/responses.sqlite; 'none': none)"),
    ("--max-calls", int, None, "send at most N requests in this run, retries included (cache hits are free)"),
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
)


def _fields(p: argparse.ArgumentParser, *, keep: bool = False) -> None:
    p.add_argument("--text-field", help="key or column holding the text (default: text, else input)")
    p.add_argument("--label-field", help="key or column holding the label (default: label)")
    if keep:
        p.add_argument("--fields", type=lambda v: [f.strip() for f in v.split(",") if f.strip()], metavar="LIST",
                       help="the input's own fields to write beside the labels, comma-separated (default: all; '' "
                       "for none)")


def _model(p: argparse.ArgumentParser, *, method: bool = True, plan: bool = False, strategy: bool = True) -> None:
    p.add_argument("--annotator", default="embedded", help=f"the annotator: {SPECS}")
    if method:
        p.add_argument("--method", choices=list(METHODS), help="the method (default: cm_best, for every "
                       "annotator; the docs' Methods page says what each does)")
    p.add_argument("--device", default="cpu", help="local models and the encoder: cpu, cuda, mps (default: cpu)")
    p.add_argument("--encoder", default=DEFAULT, help=f"sentence encoder: {ENCODERS} (default: {DEFAULT})")
    llm = p.add_argument_group("LLM annotators (hf:PATH, hf-score:PATH, openai:MODEL, openai-score:MODEL)")
    if strategy:
        llm.add_argument("--strategy", default="vanilla", choices=STRATEGIES, help="prompting strategy "
                         "(default: vanilla)")
    if plan:
        llm.add_argument("--dry-run", action="store_true", help="send nothing: count the requests the cache "
                         "cannot answer and their tokens")
    for flag, kind, default, help in LLM_OPTIONS:
        llm.add_argument(flag, type=kind, default=default, help=help + ("" if default is None else
                                                                        f" (default: {default})"))


def _output(p: argparse.ArgumentParser, what: str, *, resume: bool = False) -> None:
    p.add_argument("-o", "--output", required=True, help=what)
    again = p.add_mutually_exclusive_group()
    if resume:
        again.add_argument("--resume", action="store_true", help="the output exists: keep its lines, label the rest")
    again.add_argument("--overwrite", action="store_true", help="the output exists: replace it (once the new is whole)")


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    """The parser; ``commands`` maps each command's name to the function that runs it."""
    if commands is None:
        from .commands import COMMANDS as commands
    parser = argparse.ArgumentParser(prog="cmalign", description="Label text the way one user means it, learned "
                                     "from a few of their labels (Consistent Marginalization).")
    parser.add_argument("--version", action="version", version=f"cmalign {__version__}")
    talk = argparse.ArgumentParser(add_help=False)
    loud = talk.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=-1, default=0,
                      help="say nothing but errors")
    loud.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=1, help="say more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, usage: str = "") -> argparse.ArgumentParser:  # usage: a short one
        p = sub.add_parser(name, help=help, description=help, parents=[talk],
                           usage=f"cmalign {name} {usage} [options]" if usage else None)
        p.set_defaults(func=commands[name])
        return p

    p = command("datasets", "list the bundled datasets, or write one as example files to run the quickstart on")
    p.add_argument("--write", nargs=2, metavar=("NAME", "DIR"), help="write dataset NAME into folder DIR: "
                   "prefs.jsonl (a few labelled items), items.jsonl (the items to label, gold label under 'gold') "
                   "and labels.txt")
    p.add_argument("--budget", default="0.02", help="--write: the share of the pool in prefs.jsonl, e.g. 0.02 (the "
                   "default), or n=200")
    p.add_argument("--seed", type=int, default=0, help="--write: seed of the split (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="--write: replace the files if they exist")
    p = command("fit", "preference files (the user's labels) -> memory bank file (and the method's state)",
                "PREFERENCES... -o BANK")
    p.add_argument("preferences", nargs="+", help="JSONL, CSV, TSV or Parquet with a text and a label per item, or "
                   "a Label Studio JSON export (its annotated tasks); one file per labelling round; - reads stdin")
    _output(p, "where to write the bank (JSON)")
    p.add_argument("--labels", help="label-set file (one label a line; default: the labels in the data)")
    _fields(p)
    _model(p, plan=True)
    p = command("annotate", "unlabelled file -> the labels, using a bank (JSONL, CSV, TSV or Parquet by -o's suffix)",
                "INPUT --bank BANK -o OUTPUT")
    p.add_argument("input", help="JSONL, CSV, TSV or Parquet with a text per item, or a Label Studio JSON export; "
                   "- reads stdin")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    _output(p, "where to write the labels: .jsonl, .csv, .tsv or .parquet; - writes JSONL to stdout", resume=True)
    p.add_argument("--labels", help="label-set file; must match the bank's")
    p.add_argument("--adapt", type=int, default=SAMPLE, metavar="N", help="cm_best learns from a seeded sample of N "
                   f"input items before labelling (default and most: {SAMPLE}; 0: off, as cm_stack)")
    _fields(p, keep=True)
    run = p.add_argument_group("where the labelling runs").add_argument
    run("--engine", choices=("local", "ray"), default="local", help="local: this process (the default); ray: Ray "
        "workers, each loading the model once (pip install 'cmalign[ray]')")
    run("--workers", type=int, default=2, help="Ray workers (default: 2)")
    run("--ray-address", help="a running Ray cluster (auto, ray://HOST:10001; default: $RAY_ADDRESS, else a local "
        "Ray started for this run)")
    run("--threads", type=int, help="threads for the model and linear algebra in this process (default: "
        f"$OMP_NUM_THREADS where set, else the cores it may use: here {usable_cores()})")
    run("--batch-size", type=int, default=2048, help=argparse.SUPPRESS)
    _model(p, plan=True)
    p = command("select", "unlabelled pool -> the items to label next (a file with a label to fill)",
                "POOL --n N -o OUTPUT")
    p.add_argument("pool", help="JSONL, CSV, TSV or Parquet with a text per item; - reads stdin")
    p.add_argument("--n", type=int, required=True, help="how many items to choose")
    _output(p, "where to write them: .jsonl, .csv, .tsv or .parquet; - writes JSONL to stdout")
    p.add_argument("--bank", help="the bank of every label given so far: items in it are never offered again, "
                   "and the method's least sure items are chosen")
    p.add_argument("--labels", help="label-set file: without a bank, cover reads the annotator's scores over it too")
    p.add_argument("--selector", choices=("auto", *SELECTORS), default="auto", help="auto: cover without a bank, "
                   "uncertain with one (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0): the same seed, the same choice")
    _fields(p, keep=True)
    _model(p)
    p = command("review", "bank (and an annotate output) -> ranked file of what a person should check",
                "--bank BANK -o OUTPUT")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    p.add_argument("--labelled", help="an annotate output: its least confident items are added")
    p.add_argument("--n", type=int, default=100, help="least confident labelled items to add (default: 100)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold splits (default: 0)")
    _output(p, "where to write the review (JSONL; - for stdout)")
    _model(p)
    p = command("bench", "the paper's protocol: datasets x budgets x seeds -> accuracy table")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dataset", action="append", help="bundled dataset(s), comma-separated (default: all)")
    where.add_argument("--data", help="a folder with large.jsonl and/or small.jsonl of your own")
    p.add_argument("--budget", action="append", help="fraction(s) of the pool the user labels, e.g. 0.01,0.05 "
                   "(the default), or n=500")
    p.add_argument("--seed", action="append", help="seed(s), e.g. 0,1 (the default)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    p.add_argument("--limit", type=int, help="evaluate on a seeded subset of this many items (slow annotators)")
    p.add_argument("--strategies", action="append", metavar="LIST", help=f"chat models: strategies to compare "
                   f"({','.join(STRATEGIES)}; default: vanilla); each gives X and X+M for every method M that asks "
                   "the annotator")
    p.add_argument("--select", action="append", metavar="LIST", help=f"how the preference sample is drawn: "
                   f"{', '.join(SELECTORS)} or all (default: random, the paper's protocol); each run per selector")
    _fields(p)
    _model(p, method=False, strategy=False)
    p = command("export", "labelled file (annotate's output) -> Parquet, CSV, TSV, JSONL or Label Studio tasks")
    p.add_argument("input", help="labelled JSONL, e.g. what 'cmalign annotate' wrote; - reads stdin")
    _output(p, "where to write the export (- for stdout); .json is a Label Studio tasks file (its labelling "
            f"config goes beside it, as {config_path('OUT.json')})")
    p.add_argument("--format", choices=FORMATS, help="the format (default: from the output's suffix: .parquet, "
                   ".csv, .tsv, .jsonl, .json)")
    names = p.add_mutually_exclusive_group()
    names.add_argument("--bank", help="the bank whose label set the Label Studio choices list (every label, "
                       "used or not)")
    names.add_argument("--labels", help="label-set file: the Label Studio choices (default: the labels in the data)")
    p = command("report", "bank (+ labelled output, review, bench) -> one self-contained HTML page")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit'")
    p.add_argument("--labelled", metavar="OUT.jsonl", help="output of 'cmalign annotate' (read as a stream)")
    p.add_argument("--review", metavar="REVIEW.jsonl", help="output of 'cmalign review'")
    p.add_argument("--bench", metavar="BENCH.jsonl", help="output of 'cmalign bench --json'")
    p.add_argument("--gold-field", default="gold", help="key of a gold label in the labelled lines, for a "
                   "reliability diagram without a review (default: gold)")
    _output(p, "the HTML page; its figures go into NAME_files/ beside it")
    p = command("serve", "a bank -> a live labeller over HTTP: Label Studio's ML backend and a JSON API, learning "
                "from each new label (pip install 'cmalign[serve]')", "--bank BANK")
    p.add_argument("--bank", required=True, help="memory bank written by 'cmalign fit' (never written; new labels go "
                   "to BANK.labels.jsonl beside it, each refit to BANK.served.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; any other needs "
                   "--token-env)")
    p.add_argument("--port", type=int, default=9090, help="port (default: 9090)")
    p.add_argument("--token-env", metavar="NAME", help="environment variable holding the bearer token every request "
                   "but /health must send")
    p.add_argument("--refit-after", type=int, default=20, metavar="N", help="refit in the background once N new "
                   "labels have come (default: 20; 0: only on Label Studio's START_TRAINING or POST /v1/refit)")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20, help="largest request body (default: 1 MiB)")
    p.add_argument("--max-texts", type=int, default=256, help="most texts, tasks or labels in one request "
                   "(default: 256)")
    p.add_argument("--max-batch", type=int, default=512, help="most texts from concurrent requests labelled "
                   "together (default: 512)")
    p.add_argument("--threads", type=int, help="threads for the model and linear algebra (default: "
                   f"$OMP_NUM_THREADS where set, else the cores it may use: here {usable_cores()})")
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="no line per request")
    _model(p)
    p = command("prompts", "print the prompt templates (TOML) to edit and pass with --prompts")
    p.add_argument("--prompts", metavar="FILE", help="show the defaults with this file's templates applied")
    return parser


def flag_names(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """A command's settings by parameter -> the flag that sets each (``max_calls`` -> ``--max-calls``),
    read from the parser itself, so what the library says names the flag the user typed."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {a.dest: max(a.option_strings, key=len) for a in commands[command]._actions if a.option_strings}
