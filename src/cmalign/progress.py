"""What a long job says while it runs: one message per phase, and progress through the items.

Everything goes through the ``cmalign`` logger, so a front end chooses how much is said (the
command line's ``-q``/``-v``) and where. A job calls :meth:`Progress.phase` as it starts each phase
(loading the model, reading the input, learning from the corpus, labelling, writing) and counts its
items through :meth:`Progress.bar`. With a terminal, the count is a bar that redraws itself; without
one (a log file, a CI job, cron), it is a line every ``every`` seconds with the items done, the rate
and the time left, and a last line when the phase ends.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("cmalign")

EVERY = 10.0  # seconds between progress lines without a terminal ($CMALIGN_PROGRESS_SECONDS sets it)


def _interval() -> float:
    try:
        return max(0.0, float(os.environ["CMALIGN_PROGRESS_SECONDS"]))
    except (KeyError, ValueError):
        return EVERY


class Progress:
    """Phases and item counts of one job. ``terminal`` (default: whether ``stream`` is one) chooses
    a redrawn bar over periodic lines; ``enabled=False`` says nothing at all."""

    def __init__(self, *, stream: TextIO | None = None, terminal: bool | None = None, every: float | None = None,
                 enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = terminal if terminal is not None else _isatty(self.stream)
        self.every = every if every is not None else _interval()
        self.enabled = enabled

    def phase(self, what: str) -> None:
        """Say that the job now does ``what`` ("loading the model")."""
        if self.enabled:
            log.info("%s", what)

    @contextmanager
    def bar(self, total: int | None, what: str, unit: str = "item") -> Iterator[Count]:
        """Count ``total`` items of the phase ``what``: yields a :class:`Count`."""
        if not self.enabled or not log.isEnabledFor(logging.INFO):
            yield Count()
            return
        if self.terminal:
            from tqdm.auto import tqdm

            with tqdm(total=total, desc=what, unit=unit, file=self.stream, leave=False) as shown:
                yield Count(shown.update, shown.update)
            return
        lines = _Lines(total, what, unit, self.every)
        yield Count(lines.update, lines.skip)
        lines.close()


@dataclass(frozen=True)
class Count:
    """What a job calls as its items are done: ``update(n)``, and ``skip(n)`` for the items done
    before it began (a resumed run's), which count as done but not towards the rate."""

    update: Callable[[int], object] = lambda n: None
    skip: Callable[[int], object] = lambda n: None


class _Lines:
    """Progress as log lines, at most one every ``every`` seconds, and one at the end."""

    def __init__(self, total: int | None, what: str, unit: str, every: float) -> None:
        self.total, self.what, self.unit, self.every = total, what, unit, every
        self.done = self.base = 0
        self.said: int | None = None
        self.started = self.last = time.monotonic()

    def skip(self, n: int) -> None:
        self.done += n
        self.base += n

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last, self.said = now, self.done
            log.info("%s", self.line(now))

    def close(self) -> None:
        if self.said != self.done:  # the last count, unless the last line said it
            log.info("%s", self.line(time.monotonic()))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self.base) / elapsed
        of = f"/{self.total}" if self.total is not None else ""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = ""
        if self.total is not None and rate > 0 and self.done < self.total:
            left = f", {_duration((self.total - self.done) / rate)} left"
        shown = f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"  # a slow phase (bench runs) is not "0 runs/s"
        return f"{self.what}: {self.done}{of} {self.unit}s{share}, {shown} {self.unit}s/s{left}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


QUIET = Progress(enabled=False)
