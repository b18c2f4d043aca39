#!/bin/sh
# Everything the tests need beyond the Python packages of the test extra, for the README's test command
# (CONTRIBUTING.md says what each installs and why): the real LLM server, the headless browser, and
# Label Studio where its installer is part of the checkout. Each script does nothing when its tool is there.
set -e
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/install-llm-server.sh"
sh "$here/install-browser.sh"
if [ -f "$here/install-label-studio.sh" ]; then sh "$here/install-label-studio.sh"; fi
