"""Tuning this process for the work: thread pools and how the C library hands memory back.

On a shared machine a process whose OpenMP or BLAS pools are larger than the cores it gets spins
waiting for them; and glibc keeps freed activations resident unless told otherwise. Every command
that encodes calls these once, and every Ray worker does the same in its own process.
"""

from __future__ import annotations

import ctypes
import os
import sys


_threads: int | None = None  # what set_threads set; None: default_threads()


def set_threads(n: int) -> None:
    """Use ``n`` threads for the encoder's (onnxruntime's or torch's) and the BLAS libraries'
    parallel loops in this process.

    On a shared machine, a process whose OpenMP or BLAS pools are larger than the cores it really
    gets spins waiting for them; one per core it owns keeps it fast beside other jobs."""
    global _threads
    from threadpoolctl import threadpool_limits

    _threads = n
    threadpool_limits(n)
    torch = sys.modules.get("torch")  # only an st: or hf: model brings torch in
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def threads() -> int:
    """The threads an encoder's session takes: what :func:`set_threads` set, else the default."""
    return _threads if _threads is not None else default_threads()


def _libc():
    """glibc, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both, or neither
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
M_MMAP_THRESHOLD = -3   # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD = 4 << 20


def trim_memory() -> None:
    """Hand the memory freed since the last call back to the system.

    The model's activations differ in size from batch to batch, and glibc keeps what they freed:
    without this, a process's resident memory crept up chunk after chunk (753 -> 1081 MB over 30k
    items, most of it free) while Python's own heap stayed flat. It takes about 12 ms a chunk."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def map_large_blocks() -> None:
    """Have glibc take every block of 4 MiB or more (the model's activations) straight from the
    system and give it back on release, instead of from its heap, in this process from now on.

    By default glibc raises that threshold to the largest block released so far, so activations
    come from the heap, whose free holes stay resident until :func:`trim_memory` at the end of a
    chunk and are too small for the next batch's blocks: the heap kept growing within a chunk, and
    the peak with the rare chunk of long texts (917 MiB over 41k items, 651 MiB between
    chunks). With a fixed threshold the same run peaked at 775 MiB, as fast."""
    if _LIBC is not None:
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def default_threads() -> int:
    """``$OMP_NUM_THREADS`` where the user set it, else :func:`usable_cores`."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return usable_cores()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
