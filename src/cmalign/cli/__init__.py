"""The ``cmalign`` command: flags in, a library job called, what it did out; errors as one line.

Every input problem ends as one line on stderr naming the file, line or field (the flag, where it
is a setting), and exit code 2; a traceback means a bug in cmalign. What a job says while it runs
goes through the ``cmalign`` logger to stderr: ``-q`` keeps only errors, ``-v`` says more.
Without a terminal, progress is a line every few seconds ($CMALIGN_PROGRESS_SECONDS, default 10).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

from ..errors import CmalignError
from ..progress import Progress, log
from .commands import COMMANDS
from .parser import build_parser, flag_names

EXIT_USAGE = 2
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def _logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(LEVELS[verbosity])
    log.propagate = False


def _terminated(signum: int, frame: object) -> None:  # unwinds like ^C: temporaries removed, lines kept
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads that wait for work sleep instead of spinning (read when torch loads, later):
    # beside other jobs on a shared machine, spinning threads took the cores the work needed.
    # A value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser(COMMANDS)
    args = parser.parse_args(argv)
    args.names = flag_names(parser, args.command)  # for a job that names settings in what it writes
    _logging(args.verbosity)
    try:
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread (a caller's own): it keeps its own handling
        previous = None
    try:
        return args.func(args, Progress(enabled=args.verbosity >= 0))
    except CmalignError as exc:
        print(f"cmalign: error: {exc.render(args.names)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cmalign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): not an error of ours;
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and the flush at exit must not fail
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["build_parser", "main"]
