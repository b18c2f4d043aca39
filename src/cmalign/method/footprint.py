"""What a fit or an adapt will cost, said before it starts: refused when it cannot fit in memory,
warned about when it will take long.

The combined models (``cm_stack``, ``cm_best``) build their evidence as matrices of one number per
(text, label): their memory and time grow with ``texts x labels``, and their regression's with
``labels`` on top. Measured on one thread (fit: n preference samples of C labels, one each; adapt:
the 4,096-item corpus sample), the process's peak (about 260 MB of it is the loaded model):

    labels   fit s   fit peak MB   adapt s   adapt peak MB
       250     2.6           296      27.3             538
       500     6.7           365      44.6             703
     1,000    22.2           550     102.7             971

so about 320 bytes and 30 microseconds per (sample, label) pair to fit, and 160 bytes and 25
microseconds per (corpus item, label) pair to adapt, the constants below (rounded up). At 5,000
labels with one sample each that is about 8 GB and 12 minutes to fit: on a smaller machine the
fit is refused before the annotator is asked anything, and the message names the methods whose
cost does not grow so (``cm_remap``, ``knn``, ``logreg``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CmalignError

log = logging.getLogger("cmalign")

FIT_BYTES, FIT_SECONDS = 320, 30e-6        # per (preference sample, label) pair
ADAPT_BYTES, ADAPT_SECONDS = 160, 25e-6    # per (corpus item learned from, label) pair
SLOW = 600.0                               # seconds past which a warning says how long
_warned: set[str] = set()
CHEAPER = "{=method} cm_remap, knn or logreg, whose cost does not grow with samples x labels"


@dataclass(frozen=True)
class Footprint:
    """The estimated peak memory (bytes, above what is loaded) and time (seconds, one thread)."""

    bytes: int
    seconds: float

    def __str__(self) -> str:
        minutes = self.seconds / 60
        return f"about {self.bytes / 2**30:.1f} GB and {minutes:.0f} minutes" if minutes >= 1 else \
            f"about {self.bytes / 2**30:.1f} GB and {self.seconds:.0f} s"


def of_fit(n_samples: int, n_labels: int) -> Footprint:
    pairs = n_samples * n_labels
    return Footprint(pairs * FIT_BYTES, pairs * FIT_SECONDS)


def of_adapt(n_items: int, n_labels: int) -> Footprint:
    pairs = n_items * n_labels
    return Footprint(pairs * ADAPT_BYTES, pairs * ADAPT_SECONDS)


def available_memory() -> int | None:
    """Bytes this process can still take: the kernel's MemAvailable, or less where a cgroup limits
    the process (containers); None where neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append(max(0, int(limit) - int(used)))
    except (OSError, ValueError):
        pass
    override = os.environ.get("CMALIGN_MEMORY_AVAILABLE")  # for a job sharing the machine with others
    if override:
        try:
            found.append(int(override))
        except ValueError:
            raise CmalignError(f"CMALIGN_MEMORY_AVAILABLE={override!r}: not a whole number of bytes") from None
    return min(found) if found else None


def check(what: str, footprint: Footprint) -> None:
    """Refuse ``what`` (``"fitting cm_best on 5000 samples of 5000 labels"``) when its footprint is
    larger than the memory available; warn when it will take longer than :data:`SLOW`."""
    available = available_memory()
    if available is not None and footprint.bytes > available:
        raise CmalignError(f"{what} needs {footprint}, and {available / 2**30:.1f} GB is available: "
                           f"it cannot finish here. Use {CHEAPER}" + (", or {=adapt} 0" if "adapt" in what else ""))
    if footprint.seconds > SLOW and what not in _warned:  # once, though the job, Labeler and method each check
        _warned.add(what)
        log.warning("%s takes %s on one thread (its cost grows with samples x labels); %s is far cheaper",
                    what, footprint, CHEAPER.replace("{=method} ", ""))
