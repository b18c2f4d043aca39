"""Writing files so that nothing already there is lost: one way to write, used by every command.

- :func:`write_atomically` writes a whole file into a temporary file beside the target (created
  with ``O_EXCL``, so it is never someone else's), syncs it and renames it over the target: a crash,
  a signal or a full disk leaves the old file as it was, never half a new one, and an ``overwrite``
  replaces the old file only once the new one is complete. A temporary file that a killed process
  left (``kill -9``) is removed by the next write of the same target.
- A write to a symlink lands in the file it points to and leaves the link a link; a folder, device
  or pipe at the path is refused, never replaced. Files cmalign keeps beside another (a method's
  state, a run record) are its own: a symlink there is refused (``sidecar``).
- :func:`check_outputs` runs before any model is loaded: each output can be written, is not there
  yet unless ``overwrite``, and is none of the command's inputs, compared as files (device and
  inode), so a hard link or another spelling of an input is caught too.
- ``-`` is standard output (:data:`STDOUT`): written as it comes, with nothing to rename.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from .errors import DataError

STDOUT = "-"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


def is_stdio(path: str | Path | None) -> bool:
    """Whether ``path`` is ``-``: standard input (to read) or output (to write)."""
    return path is not None and str(path) == STDOUT


def writable_target(path: str | Path, *, sidecar: bool = False) -> Path:
    """The regular file a write to ``path`` should land in (a symlink's target), checked. A
    ``sidecar`` (a file cmalign keeps beside another) is never written through a symlink."""
    if sidecar and os.path.islink(path):
        raise DataError("is a symbolic link; cmalign writes the files it keeps beside another itself, never "
                        "through a link: remove it", path)
    real = Path(os.path.realpath(path))
    if len(real.name.encode()) > 240:  # room for the temporary file's prefix and suffix within NAME_MAX
        raise DataError("the file name is too long (240 bytes at most)", path)
    if os.path.islink(real):  # realpath stops at a link it cannot resolve: a loop
        raise DataError("is a symbolic link that never reaches a file (a loop)", path)
    if real.exists() and not real.is_file():
        kind = "a folder" if real.is_dir() else "not a regular file (a device, pipe or socket)"
        raise DataError(f"is {kind}; write to a file", path)
    if not real.parent.is_dir():
        raise DataError(f"the folder {real.parent} does not exist", path)
    if not os.access(real.parent, os.W_OK) or (real.exists() and not os.access(real, os.W_OK)):
        raise DataError("cannot write here (permission denied)", path)
    return real


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_outputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path | None], *, overwrite: bool = False,
                  sidecars: Iterable[str | Path] = (), exists: str = "exists already: {=overwrite} to replace it") -> None:
    """Fail now, before any work, where writing ``outputs`` (and the ``sidecars`` kept beside them)
    would go wrong: a bad path, a file there already without ``overwrite`` (an empty file counts as
    absent), or a file that is also one of ``inputs``."""
    seen = {ident: str(p) for p in inputs if p is not None and not is_stdio(p) and (ident := _identity(p))}
    for path, sidecar in [(p, False) for p in outputs] + [(p, True) for p in sidecars]:
        if is_stdio(path):
            continue
        real = writable_target(path, sidecar=sidecar)
        ident = _identity(real)
        if ident is not None and ident in seen:
            same = "" if seen[ident] == str(path) else f" ({seen[ident]})"
            raise DataError(f"is the input file itself{same}; write to another file", path)
        if ident is not None and not overwrite and real.stat().st_size > 0:
            raise DataError(exists, path)


def remove_stale_temporaries(real: Path) -> None:
    """Remove the temporary files of ``real`` that processes no longer running left behind."""
    try:
        names = os.listdir(real.parent)
    except OSError:
        return
    for name in names:
        m = _TEMPORARY.match(name)
        if m is None or m["name"] != real.name or int(m["pid"]) == os.getpid() or _running(int(m["pid"])):
            continue
        try:
            os.unlink(real.parent / name)
        except OSError:
            pass


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object], *, sidecar: bool = False) -> None:
    """Write a whole file through ``write(handle)`` into a temporary file beside it, then rename it
    over the target: a crash or a full disk leaves the old file as it was, never half a new one.
    ``-`` writes to standard output instead."""
    if is_stdio(path):
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    real = writable_target(path, sidecar=sidecar)
    remove_stale_temporaries(real)
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except FileExistsError:  # this process's own, from a write that a signal cut short
        os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        raise DataError(f"cannot write ({exc.strerror or exc})", path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if real.exists():  # keep the permissions the user gave the file
            os.chmod(tmp, real.stat().st_mode & 0o7777)
        os.replace(tmp, real)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise DataError(f"cannot write ({reason}); the file there before is unchanged", path) from None
    except BaseException:  # a writer that found bad input half-way (or ^C, SIGTERM) leaves no temporary file
        tmp.unlink(missing_ok=True)
        raise
