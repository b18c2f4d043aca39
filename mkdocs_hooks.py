"""MkDocs hook: the docstrings' Sphinx roles, which mkdocstrings leaves as written.

The package's numpydoc docstrings name other objects as Sphinx does (``:class:`~cmalign.errors.DataError```,
``:meth:`adapt```), and mkdocstrings renders those as the role's text beside the code. Each becomes a
cross-reference for mkdocs-autorefs: a link where the object has an entry on the API page, plain code
where it has none; ``~`` shows the last name alone, as in Sphinx.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):<code>(~?)([\w.]+)</code>")


def on_page_content(html: str, **kwargs: object) -> str:
    def reference(match: re.Match) -> str:
        short, path = match.groups()
        title = path.rsplit(".", 1)[-1] if short else path
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return ROLE.sub(reference, html)
