#!/bin/sh
# The headless browser tests/test_report.py opens the report in: Chromium from the Debian packages
# (Playwright drives it through its executable path; 'playwright install' would download a browser
# build of its own, which these machines cannot fetch). Already installed: does nothing. Needs root
# (or sudo) for apt-get.
set -e
command -v chromium >/dev/null 2>&1 && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
