"""The command line's flags: one parser per command, built from shared option groups, each added
only where it applies (the LLM options under their own heading). A setting a job's options class
declares (:func:`cmalign.settings.setting`) becomes its flag from that declaration, default and help
included; choices come from the registries."""

from __future__ import annotations

import argparse

from .. import __version__
from ..chat.options import BackendOptions
from ..interchange import FORMATS, config_path
from ..jobs import AnnotateOptions, ModelOptions, ReviewOptions, SelectOptions, WriteExampleOptions
from ..process import usable_cores
from ..prompting import Decoding
from ..prompting.strategies import STRATEGIES
from ..select import SELECTORS
from ..serve.options import ServeOptions
from ..settings import flags

THREADS = ("--threads", int, None, "threads for the model and linear algebra in this process (default: "
           f"$OMP_NUM_THREADS where set, else the cores it may use: here {usable_cores()})")
WRITE_OPTIONS = (  # datasets --write
    ("--write", None, None, "write dataset NAME into folder DIR: prefs.jsonl (a few labelled items), items.jsonl (the "
     "items to label, gold label under 'gold') and labels.txt", {"nargs": 2, "metavar": ("NAME", "DIR")}),
    *flags(WriteExampleOptions),
)
BANK = ("--bank", None, None, "memory bank written by 'cmalign fit'", {"required": True})
SERVE_BANK = ("--bank", None, None, "memory bank written by 'cmalign fit' (never written; new labels go to "
              "BANK.labels.jsonl beside it, each refit to BANK.served.json)", {"required": True})


def _table(p, rows) -> None:
    """Add each (flag, type, default, help[, more of argparse's keywords]); a default the help does not state
    is appended to it."""
    for flag, kind, default, help, *more in rows:
        said = default is None or help == argparse.SUPPRESS or "default" in help
        keywords = {"type": kind} if kind else {}
        keywords |= {"default": default} if default is not None else {}
        p.add_argument(flag, help=help if said else f"{help} (default: {default})", **keywords, **(more or [{}])[0])


def _fields(p: argparse.ArgumentParser, *, keep: bool = False) -> None:
    _table(p, (("--text-field", None, None, "key or column holding the text (default: text, else input)"),
               ("--label-field", None, None, "key or column holding the label (default: label)")))
    if keep:
        p.add_argument("--fields", type=lambda v: [f.strip() for f in v.split(",") if f.strip()], metavar="LIST",
                       help="the input's own fields to write beside the labels, comma-separated (default: all; '' "
                       "for none)")


def _model(p: argparse.ArgumentParser, *, method: bool = True, plan: bool = False, strategy: bool = True) -> None:
    _table(p, flags(ModelOptions, ("annotator", "device", "encoder", *(("method",) if method else ()))))
    llm = p.add_argument_group("LLM annotators (hf:PATH, hf-score:PATH, openai:MODEL, openai-score:MODEL)")
    if strategy:
        _table(llm, flags(ModelOptions, ("strategy",)))
    if plan:
        llm.add_argument("--dry-run", action="store_true", help="send nothing: count the requests the cache "
                         "cannot answer and their tokens")
    _table(llm, (*flags(BackendOptions), *flags(ModelOptions, ("prompts",)), *flags(Decoding),
                 *flags(ModelOptions, ("shots",))))


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
    _table(p, WRITE_OPTIONS)
    p = command("fit", "preference files (the user's labels) -> memory bank file (and the method's state)",
                "PREFERENCES... -o BANK")
    p.add_argument("preferences", nargs="+", help="JSONL, CSV, TSV or Parquet with a text and a label per item, or "
                   "a Label Studio JSON export (its annotated tasks); one file per labelling round; - reads stdin")
    _output(p, "where to write the bank (JSON)")
    _table(p, (("--labels", None, None, "label-set file (one label a line; default: the labels in the data)"),))
    _fields(p)
    _model(p, plan=True)
    p = command("annotate", "unlabelled file -> the labels, using a bank (JSONL, CSV, TSV or Parquet by -o's suffix)",
                "INPUT --bank BANK -o OUTPUT")
    p.add_argument("input", help="JSONL, CSV, TSV or Parquet with a text per item, or a Label Studio JSON export; "
                   "- reads stdin")
    _output(p, "where to write the labels: .jsonl, .csv, .tsv or .parquet; - writes JSONL to stdout", resume=True)
    _table(p, (BANK, ("--labels", None, None, "label-set file; must match the bank's"),
               *flags(AnnotateOptions, ("adapt",))))
    _fields(p, keep=True)
    _table(p.add_argument_group("where the labelling runs"), (
        *flags(AnnotateOptions, ("engine", "workers", "ray_address")), THREADS,
        ("--batch-size", int, AnnotateOptions.batch_size, argparse.SUPPRESS)))
    _model(p, plan=True)
    p = command("select", "unlabelled pool -> the items to label next (a file with a label to fill)",
                "POOL --n N -o OUTPUT")
    p.add_argument("pool", help="JSONL, CSV, TSV or Parquet with a text per item; - reads stdin")
    _output(p, "where to write them: .jsonl, .csv, .tsv or .parquet; - writes JSONL to stdout")
    _table(p, (("--n", int, None, "how many items to choose", {"required": True}),
               ("--bank", None, None, "the bank of every label given so far: items in it are never offered again, "
                "and the method's least sure items are chosen"),
               ("--labels", None, None, "label-set file: without a bank, cover reads the annotator's scores over it"),
               *flags(SelectOptions, ("selector", "seed"))))
    _fields(p, keep=True)
    _model(p)
    p = command("review", "bank (and an annotate output) -> ranked file of what a person should check",
                "--bank BANK -o OUTPUT")
    _table(p, (BANK, ("--labelled", None, None, "an annotate output: its least confident items are added"),
               *flags(ReviewOptions, ("n", "folds", "seed"))))
    _output(p, "where to write the review (JSONL; - for stdout)")
    _model(p)
    p = command("bench", "the paper's protocol: datasets x budgets x seeds -> accuracy table")
    _table(p.add_mutually_exclusive_group(), (
        ("--dataset", None, None, "bundled dataset(s), comma-separated (default: all)", {"action": "append"}),
        ("--data", None, None, "a folder with large.jsonl and/or small.jsonl of your own")))
    many = {"action": "append", "metavar": "LIST"}
    _table(p, (("--budget", None, None, "fraction(s) of the pool the user labels, e.g. 0.01,0.05 (the default), "
                "or n=500", many),
               ("--seed", None, None, "seed(s), e.g. 0,1 (the default)", many),
               ("--json", None, None, "print one JSON object per run", {"action": "store_true"}),
               ("--limit", int, None, "evaluate on a seeded subset of this many items (slow annotators)"),
               ("--strategies", None, None, f"chat models: strategies to compare ({','.join(STRATEGIES)}; default: "
                "vanilla); each gives X and X+M for every method M that asks the annotator", many),
               ("--select", None, None, f"how the preference sample is drawn: {', '.join(SELECTORS)} or all "
                "(default: random, the paper's protocol); each run per selector", many)))
    _fields(p)
    _model(p, method=False, strategy=False)
    p = command("export", "labelled file (annotate's output) -> Parquet, CSV, TSV, JSONL or Label Studio tasks")
    p.add_argument("input", help="labelled JSONL, e.g. what 'cmalign annotate' wrote; - reads stdin")
    _output(p, "where to write the export (- for stdout); .json is a Label Studio tasks file (its labelling "
            f"config goes beside it, as {config_path('OUT.json')})")
    _table(p, (("--format", None, None, "the format (default: from the output's suffix: .parquet, .csv, .tsv, "
                ".jsonl, .json)", {"choices": FORMATS}),))
    _table(p.add_mutually_exclusive_group(), (
        ("--bank", None, None, "the bank whose label set the Label Studio choices list (every label, used or not)"),
        ("--labels", None, None, "label-set file: the Label Studio choices (default: the labels in the data)")))
    p = command("report", "bank (+ labelled output, review, bench) -> one self-contained HTML page")
    _table(p, (BANK, ("--labelled", None, None, "output of 'cmalign annotate' (read as a stream)",
                      {"metavar": "OUT.jsonl"}),
               ("--review", None, None, "output of 'cmalign review'", {"metavar": "REVIEW.jsonl"}),
               ("--bench", None, None, "output of 'cmalign bench --json'", {"metavar": "BENCH.jsonl"}),
               ("--gold-field", None, "gold", "key of a gold label in the labelled lines, for a reliability diagram "
                "without a review")))
    _output(p, "the HTML page; its figures go into NAME_files/ beside it")
    p = command("serve", "a bank -> a live labeller over HTTP: Label Studio's ML backend and a JSON API, learning "
                "from each new label (pip install 'cmalign[serve]')", "--bank BANK")
    _table(p, (SERVE_BANK, *flags(ServeOptions), THREADS))
    _model(p)
    p = command("prompts", "print the prompt templates (TOML) to edit and pass with --prompts")
    p.add_argument("--prompts", metavar="FILE", help="show the defaults with this file's templates applied")
    return parser


def flag_names(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """A command's settings by parameter -> the flag that sets each (``max_calls`` -> ``--max-calls``),
    read from the parser itself, so what the library says names the flag the user typed."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {a.dest: max(a.option_strings, key=len) for a in commands[command]._actions if a.option_strings}
