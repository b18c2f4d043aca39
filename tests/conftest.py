from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def encoder():
    """The real embedded model, loaded once for the whole run."""
    from cmalign import SentenceEncoder

    return SentenceEncoder()


@pytest.fixture(scope="session")
def annotator(encoder):
    from cmalign import EmbeddingAnnotator

    return EmbeddingAnnotator(encoder)
