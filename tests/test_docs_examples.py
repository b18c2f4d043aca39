"""The examples on the README and the docs pages run, and print what the pages say they print.

A fenced block after ``<!-- test: run -->`` is run (``sh`` by bash, ``python`` by this Python), every
runnable block of one page in order in one fresh folder, so a page's later blocks see the files its
earlier ones wrote. A block after ``<!-- test: output -->`` is what the run block before it prints:
compared line by line as JSON where it is JSON (numbers to within 0.005, as a confidence's last digit
can move with the thread count), else as text. The markers are HTML comments: neither GitHub nor
MkDocs shows them. A small collector of our own rather than a plugin (Sybil, pytest-markdown-docs):
it is some forty lines, and shell blocks sharing one folder per page is what the pages need.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"<!-- test: (run|output) -->\n```(\w+)\n(.*?)```", re.S)


def blocks(page: Path) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3]) for m in BLOCK.finditer(page.read_text())]


RUNNABLE = [p for p in PAGES if any(kind == "run" for kind, _, _ in blocks(p))]


def run(language: str, code: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "CMALIGN_PROGRESS_SECONDS": "600"}
    argv = ["bash", "-euo", "pipefail", "-c", code] if language == "sh" else [sys.executable, "-c", code]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"this block failed ({done.returncode}):\n{code}\n{done.stderr[-3000:]}"
    return done.stdout


def close(shown: object, printed: object) -> bool:
    if isinstance(shown, float) and isinstance(printed, (int, float)):
        return abs(shown - printed) <= 0.005
    if isinstance(shown, dict) and isinstance(printed, dict):
        return shown.keys() == printed.keys() and all(close(shown[k], printed[k]) for k in shown)
    if isinstance(shown, list) and isinstance(printed, list):
        return len(shown) == len(printed) and all(close(a, b) for a, b in zip(shown, printed))
    return shown == printed


def same_output(shown: str, printed: str) -> bool:
    try:
        said = [json.loads(chunk) for chunk in re.split(r"\n(?=\{)", shown.strip())]
        got = [json.loads(line) for line in printed.strip().splitlines()]
    except json.JSONDecodeError:
        return shown.strip() == printed.strip()
    return close(said, got)


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_the_pages_runnable_blocks_run_and_print_what_the_page_shows(page, tmp_path):
    printed = None
    for kind, language, code in blocks(page):
        if kind == "run":
            assert language in ("sh", "python"), f"{page.name}: cannot run a {language} block"
            printed = run(language, code, tmp_path)
        else:
            assert printed is not None, f"{page.name}: an output block before any run block"
            assert same_output(code, printed), f"{page.name}: the page shows\n{code}\nthe block printed\n{printed}"


def test_the_collector_finds_the_quickstart_and_compares_outputs():
    # the README's quickstart is among what runs, and a changed figure would not pass as the same output
    assert ROOT / "README.md" in RUNNABLE
    assert same_output('{"a": 0.9266,\n "b": [1]}', '{"a": 0.927, "b": [1]}\n')
    assert not same_output('{"a": 0.9266}', '{"a": 0.91}\n')
    assert not same_output("label 0.873", "label 0.874")
