"""Where a benchmark's figures came from, kept with them in its JSON: the command, the date, the
machine (cores, processor) and the code's version (the git commit, ``-dirty`` when the source
differs from it), so that every table rendered from them can say so."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _commit() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=7", "HEAD")
        dirty = git("status", "--porcelain", "--", "src", "benchmarks", "pyproject.toml")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


def provenance(command: str | None = None) -> dict:
    """The ``provenance`` object a benchmark writes beside its figures; ``command`` defaults to this
    process's own command line."""
    if command is None:
        command = "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    return {"command": command, "date": time.strftime("%Y-%m-%d"),
            "machine": {"cores": os.cpu_count(), "cpu": _cpu()}, "commit": _commit()}
