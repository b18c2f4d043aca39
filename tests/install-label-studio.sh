#!/bin/sh
# Label Studio for tests/test_serve_label_studio.py: the label-studio package from PyPI in a
# virtualenv of its own under the repository (.venv-label-studio/), because it pins Django and many
# other packages that must not touch the environment cmalign runs in. Already installed at this
# version: does nothing. The test runs it on SQLite, on loopback, with a temporary data directory.
set -e
version=1.23.2
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv-label-studio"
if [ -x "$venv/bin/label-studio" ] && \
   "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$version')" 2>/dev/null; then
    exit 0
fi
python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "label-studio==$version"
