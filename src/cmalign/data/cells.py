"""CSV cells a spreadsheet would run as a formula, written so that it shows them as text instead.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``+1+cmd|' /C calc'!A0``): a text from
the corpus must never become one. Such a cell is written with a ``'`` in front, which the
spreadsheets show as text and do not display; cmalign's own CSV reader takes that ``'`` off again,
so a file cmalign wrote reads back unchanged. A text that itself starts with quotes before such a
character gets one more, so the round trip is exact.
"""

from __future__ import annotations

import re

_FORMULA = re.compile(r"^'*[=+\-@\t\r]")
_ESCAPED = re.compile(r"^'+[=+\-@\t\r]")


def safe_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs."""
    return "'" + text if _FORMULA.match(text) else text


def plain_cell(cell: str) -> str:
    """A cell :func:`safe_cell` wrote, as the text it was."""
    return cell[1:] if _ESCAPED.match(cell) else cell
