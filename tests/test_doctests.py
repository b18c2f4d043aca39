"""The Examples in the docstrings run, on toy annotators and encoders (cmalign.method.examples):
what the documentation shows is what the code does."""

import doctest
import importlib

import pytest

MODULES = ["cmalign.method.cm", "cmalign.method.knn", "cmalign.method.logreg", "cmalign.method.marginal",
           "cmalign.method.combined", "cmalign.method.transductive", "cmalign.method.examples", "cmalign.chunks",
           "cmalign.labels", "cmalign.labeler", "cmalign.jobs", "cmalign.jobs.datasets",
           "cmalign", "cmalign.method.bank", "cmalign.annotators.base", "cmalign.data.io",
           "cmalign.prompting.strategies", "cmalign.chat.openai_api", "cmalign.annotators.openai_score",
           "cmalign.chat.embeddings"]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} shows no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail (see the output above)"
