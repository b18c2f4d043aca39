"""The docs site builds with --strict (no broken link, anchor or API reference), covers every command and
every public name, and speaks of the product in the present tense."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import cmalign
import cmalign.jobs
from cmalign.cli.parser import build_parser

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def test_the_site_builds_strict(tmp_path):
    # run from elsewhere than the checkout: nothing in mkdocs.yml may depend on the working folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "write_example" in api and "predict_proba" in api  # mkdocstrings rendered the docstrings
    # the docstrings' Sphinx roles read as code, and link where the object has its own entry
    assert not re.search(r":(?:func|class|meth|mod|attr|exc):<code>", api)
    assert '<code>CmalignError</code></a>' in api and 'href="#cmalign.CmalignError"' in api
    assert "fonts.googleapis" not in (tmp_path / "site" / "index.html").read_text()  # nothing fetched to read it


def _pages() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.rglob("*.md")))


def test_every_command_is_on_some_page():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    text = _pages()
    missing = [name for name in commands if f"cmalign {name}" not in text]
    assert not missing, f"commands no docs page names: {missing}"


def test_every_public_class_and_job_has_its_api_entry():
    api = (DOCS / "api.md").read_text()
    shown = set(re.findall(r"^::: [\w.]*?(\w+)$", api, re.M))
    public = {name for name in cmalign.__all__ if isinstance(getattr(cmalign, name), type)}
    public |= set(cmalign.jobs.__all__)
    assert not public - shown, f"public names without an API entry: {sorted(public - shown)}"


HISTORY = re.compile(r"issue [0-9]|last stop|this stop|earlier stop|last time|before the change|previously", re.I)


def test_the_product_speaks_in_the_present_tense():
    said = []
    for path in [ROOT / "README.md", *DOCS.rglob("*.md"), *(ROOT / "src").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if HISTORY.search(line):
                said.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not said, "\n".join(said)
