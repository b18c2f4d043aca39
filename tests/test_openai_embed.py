"""``--encoder openai-embed:MODEL`` against a real OpenAI-compatible embeddings endpoint on loopback
(llama-cpp-python's server with embeddings on, serving SmolLM2), through a proxy that injects faults."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from cmalign.chat.backend import BackendError, BudgetExceeded, ResponseCache
from cmalign.chat.embeddings import OpenAIEmbedder

from llm_server import MODEL_ALIAS, FaultProxy, LlamaServer

SECRET = "sk-cmalign-test-5ecret-do-not-leak"
TEXTS = ["where is my card", "cancel my order please", "set an alarm for seven", "what is the weather today"]


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    server = LlamaServer(smollm2_path, tmp_path_factory.mktemp("llama") / "embed.log", embeddings=True)
    yield server
    server.stop()


@pytest.fixture
def proxy(server):
    proxy = FaultProxy(server.port)
    yield proxy
    proxy.close()


def _embedder(proxy, tmp_path, **options) -> OpenAIEmbedder:
    return OpenAIEmbedder(MODEL_ALIAS, base_url=proxy.url, cache=ResponseCache(tmp_path / "cache.sqlite"), **options)


def test_vectors_are_unit_length_in_order_and_cached_for_the_next_run(proxy, tmp_path):
    first = _embedder(proxy, tmp_path).embed(TEXTS, 3)
    assert proxy.seen == 2  # 4 texts, 3 to a request
    assert first.shape[0] == 4 and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    alone = _embedder(proxy, tmp_path / "other").embed(TEXTS[2:3], 3)[0]
    assert np.allclose(alone, first[2], atol=1e-4)  # each row is its own text's, whatever it was sent with
    again = _embedder(proxy, tmp_path)
    assert np.array_equal(again.embed(TEXTS[::-1], 3), first[::-1])
    assert proxy.seen == 3 and again.sent == 0 and again.dim == first.shape[1]


def test_server_errors_are_retried_and_each_attempt_is_counted(proxy, tmp_path):
    proxy.plan, proxy.retry_after = ["500", "429", "drop"], "0"
    embedder = _embedder(proxy, tmp_path, max_retries=3)
    vectors = embedder.embed(TEXTS, 8)
    assert vectors.shape[0] == 4 and embedder.attempts == 4 and proxy.seen == 4


@pytest.mark.parametrize("fault", ["nan-vector", "short-data"])
def test_a_broken_reply_is_asked_again_and_never_cached(proxy, tmp_path, fault):
    proxy.plan = [fault]
    vectors = _embedder(proxy, tmp_path).embed(TEXTS, 8)
    assert np.all(np.isfinite(vectors)) and proxy.seen == 2
    proxy.default = fault
    with pytest.raises(BackendError, match=f"openai-embed:{MODEL_ALIAS} at {proxy.url}: .*after 1 retries"):
        _embedder(proxy, tmp_path / "broken", max_retries=1).embed(["a text never embedded"], 8)
    with sqlite3.connect(tmp_path / "broken" / "cache.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 0


def test_max_calls_stops_before_the_request_past_it(proxy, tmp_path):
    embedder = _embedder(proxy, tmp_path, max_calls=1)
    with pytest.raises(BudgetExceeded, match="the 1 requests .* allows are spent"):
        embedder.embed(TEXTS, 2)
    assert proxy.seen == 1
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:  # what was received is kept
        assert db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 2


def test_a_wrong_key_is_one_error_that_never_shows_it(proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("CMALIGN_TEST_KEY", SECRET)
    proxy.default = "401"
    with pytest.raises(BackendError) as error:
        _embedder(proxy, tmp_path, api_key_env="CMALIGN_TEST_KEY").embed(TEXTS, 8)
    assert "HTTP 401" in str(error.value) and SECRET[:8] not in str(error.value) and SECRET[-4:] not in str(error.value)
    assert SECRET not in repr(_embedder(proxy, tmp_path, api_key_env="CMALIGN_TEST_KEY"))


def test_identity_names_the_model_and_a_digest_of_the_endpoint(proxy, server, tmp_path):
    here = _embedder(proxy, tmp_path)
    assert here.identity.startswith(f"openai-embed:{MODEL_ALIAS}@")
    assert here.identity != OpenAIEmbedder(MODEL_ALIAS, base_url=server.url).identity
    assert here.identity != OpenAIEmbedder("another", base_url=proxy.url).identity


def _cmalign(*args):
    return subprocess.run([sys.executable, "-m", "cmalign", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_fit_annotate_and_dry_run_through_the_endpoint(proxy, tmp_path):
    from cmalign.data import load_bundled

    data = load_bundled("massive_scenario")
    prefs, corpus = tmp_path / "prefs.jsonl", tmp_path / "corpus.jsonl"
    prefs.write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n" for i in data.small[:40]))
    corpus.write_text("".join(json.dumps({"text": i.text}) + "\n" for i in data.small[40:70]))
    common = ("--encoder", f"openai-embed:{MODEL_ALIAS}", "--base-url", proxy.url, "--cache", str(tmp_path / "c.sqlite"))
    fitted = _cmalign("fit", str(prefs), "-o", str(tmp_path / "bank.json"), *common)
    assert fitted.returncode == 0, fitted.stderr
    bank = json.loads((tmp_path / "bank.json").read_text())
    assert bank["encoder"].startswith(f"openai-embed:{MODEL_ALIAS}@")

    seen = proxy.seen
    planned = _cmalign("annotate", str(corpus), "--bank", str(tmp_path / "bank.json"), "-o", str(tmp_path / "out.jsonl"),
                       "--dry-run", *common)
    assert planned.returncode == 0, planned.stderr
    assert proxy.seen == seen and not (tmp_path / "out.jsonl").exists()  # nothing sent, nothing written
    assert f"openai-embed:{MODEL_ALIAS} at {proxy.url}: dry run: " in planned.stdout + planned.stderr

    done = _cmalign("annotate", str(corpus), "--bank", str(tmp_path / "bank.json"), "-o", str(tmp_path / "out.jsonl"),
                    *common)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and {r["label"] for r in rows} <= set(data.labels)

    other = _cmalign("annotate", str(corpus), "--bank", str(tmp_path / "bank.json"), "-o", str(tmp_path / "o2.jsonl"))
    assert other.returncode == 2 and "openai-embed:" in other.stderr and "bge-small" in other.stderr
