"""Writing files so that nothing already there is lost: checked targets and atomic replacement.

A write to a symlink lands in the file it points to and leaves the link a link; a folder, device or
pipe at the path is refused, never replaced; a missing folder, a path we may not write to and a full
disk are one-line errors naming the path. The checks run before any model is loaded, so a bad ``-o``
costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import DataError


def writable_target(path: str | Path) -> Path:
    """The regular file a write to ``path`` should land in (a symlink's target), checked."""
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_file():
        kind = "a folder" if real.is_dir() else "not a regular file (a device, pipe or socket)"
        raise DataError(f"is {kind}; write to a file", path)
    if not real.parent.is_dir():
        raise DataError(f"the folder {real.parent} does not exist", path)
    if not os.access(real.parent, os.W_OK) or (real.exists() and not os.access(real, os.W_OK)):
        raise DataError("cannot write here (permission denied)", path)
    return real


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a whole file through ``write(handle)`` into a temporary file beside it, then rename it
    over the target: a crash or a full disk leaves the old file as it was, never half a new one."""
    real = writable_target(path)
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if real.exists():  # keep the permissions the user gave the file
            os.chmod(tmp, real.stat().st_mode & 0o7777)
        os.replace(tmp, real)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write ({exc.strerror or exc})", path) from None
    except BaseException:  # a writer that found bad input half-way (or ^C) leaves no temporary file either
        tmp.unlink(missing_ok=True)
        raise
