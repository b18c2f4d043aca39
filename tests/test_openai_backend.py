"""The OpenAI-compatible backend against a real server on loopback (llama-cpp-python serving SmolLM2),
with a proxy in front of it that injects rate limits, server errors, slowness and dropped connections."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cmalign.chat.backend import BackendError, BudgetExceeded, ChatRequest, ResponseCache
from cmalign.chat.openai_api import OpenAIChatBackend

from llm_server import MODEL_ALIAS, FaultProxy, LlamaServer

SECRET = "sk-cmalign-test-5ecret-do-not-leak"


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    server = LlamaServer(smollm2_path, tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def proxy(server):
    proxy = FaultProxy(server.port)
    yield proxy
    proxy.close()


def request(text: str, **decoding) -> ChatRequest:
    return ChatRequest.of([{"role": "system", "content": "Label the text: alarm, music or weather."},
                           {"role": "user", "content": text}], max_tokens=8, **decoding)


def backend(url, tmp_path, **options) -> OpenAIChatBackend:
    options = {"concurrency": 2, "timeout": 30.0, "max_retries": 3} | options
    return OpenAIChatBackend(MODEL_ALIAS, base_url=url, cache=ResponseCache(tmp_path / "cache.sqlite"), **options)


def test_answers_and_usage_from_the_real_server_then_all_from_the_cache(proxy, tmp_path):
    texts = ["wake me at 7", "play jazz", "rain tomorrow?"]
    first = backend(proxy.url, tmp_path)
    replies = first.complete([request(t) for t in texts] + [request(texts[0])])  # one repeat: sent once
    assert all(r.text and r.prompt_tokens > 10 and 0 < r.completion_tokens <= 8 for r in replies)
    assert replies[3] == replies[0] and proxy.seen == 3
    assert first.usage.sent == 3 and first.usage.cache_hits == 1
    assert first.usage.prompt_tokens == sum(r.prompt_tokens for r in replies[:3])

    again = backend(proxy.url, tmp_path)  # a new process would see the same file
    assert [r.text for r in again.complete([request(t) for t in texts])] == [r.text for r in replies[:3]]
    assert proxy.seen == 3 and again.usage.sent == 0 and again.usage.cache_hits == 3
    # anything that changes the answer is part of the key: another seed is a new request
    again.complete([request(texts[0], seed=1)])
    assert proxy.seen == 4


def test_rate_limit_is_retried_after_the_servers_retry_after(proxy, tmp_path):
    proxy.plan, proxy.retry_after = ["429"], "1.5"
    started = time.monotonic()
    reply = backend(proxy.url, tmp_path).complete([request("play jazz")])[0]
    assert reply.text and proxy.seen == 2 and proxy.forwarded == 1
    assert time.monotonic() - started >= 1.4  # its own backoff would have waited at most 0.5 s


def test_server_errors_and_a_dropped_connection_are_retried(proxy, tmp_path):
    proxy.plan = ["500", "drop", "503"]
    reply = backend(proxy.url, tmp_path).complete([request("play jazz")])[0]
    assert reply.text and proxy.seen == 4 and proxy.forwarded == 1


def test_retries_run_out_with_a_clear_error(proxy, tmp_path):
    proxy.default = "500"
    with pytest.raises(BackendError, match=r"openai:smollm2 at .*: HTTP 500 after 2 retries: injected 500"):
        backend(proxy.url, tmp_path, max_retries=2).complete([request("play jazz")])
    assert proxy.seen == 3


def test_slow_answers_time_out_and_the_rerun_sends_only_what_is_missing(proxy, tmp_path):
    texts = ["wake me at 7", "play jazz", "rain tomorrow?"]
    # the timeout leaves a loaded machine's real server time to answer; the slow answers take longer
    proxy.plan, proxy.default, proxy.delay = ["pass", "pass"], "slow", 9.0
    with pytest.raises(BackendError, match=r"no answer within 4 s, 2 times"):
        backend(proxy.url, tmp_path, concurrency=1, timeout=4.0, max_retries=1).complete([request(t) for t in texts])
    assert proxy.seen == 4  # two answered, the third tried twice
    proxy.default = "pass"
    rerun = backend(proxy.url, tmp_path, concurrency=1)
    assert all(r.text for r in rerun.complete([request(t) for t in texts]))
    assert proxy.seen == 5 and rerun.usage.sent == 1 and rerun.usage.cache_hits == 2


def test_max_calls_stops_before_sending(proxy, tmp_path):
    capped = backend(proxy.url, tmp_path, max_calls=2)
    with pytest.raises(BudgetExceeded, match=r"needs 3 new requests .* only 2 of the 2 allowed"):
        capped.complete([request(t) for t in ("a", "b", "c")])
    assert proxy.seen == 0
    capped.complete([request(t) for t in ("a", "b")])
    capped.complete([request("a")])  # cached: free
    assert proxy.seen == 2 and capped.usage.sent == 2


def test_an_over_long_prompt_is_one_empty_answer_not_a_crash(proxy, tmp_path):
    too_long = request("alarm " * 3000)
    replies = backend(proxy.url, tmp_path).complete([too_long, request("play jazz")])
    assert replies[0].text == "" and replies[0].rejected and replies[1].text
    assert backend(proxy.url, tmp_path).cache.get(too_long.key("openai:" + MODEL_ALIAS)) is None  # asked again next time


def _main(capsys, *args):
    """``cmalign ARGS`` in this process (the embedded model loaded once): (exit code, stdout, stderr)."""
    from cmalign.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _cmalign(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "cmalign", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def write_preferences(path, n):
    from cmalign.data import load_bundled

    items = load_bundled("massive_scenario").small[:n]
    path.write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n" for i in items))
    return path


@pytest.fixture
def preferences(tmp_path):
    return write_preferences(tmp_path / "prefs.jsonl", 10)


def test_killed_server_mid_run_then_the_rerun_resumes_from_the_cache(smollm2_path, tmp_path):
    preferences = write_preferences(tmp_path / "prefs.jsonl", 24)
    cache = tmp_path / "cache.sqlite"
    doomed = LlamaServer(smollm2_path, tmp_path / "doomed.log")

    def kill_after_some_answers():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(cache) as db:
                    if db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] >= 6:
                        doomed.kill()
                        return
            except sqlite3.OperationalError:
                pass  # not created yet
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_some_answers)
    killer.start()
    args = ["fit", str(preferences), "-o", str(tmp_path / "bank.json"), "--annotator", f"openai:{MODEL_ALIAS}",
            "--cache", str(cache), "--concurrency", "1", "--retries", "1"]
    failed = _cmalign(*args, "--base-url", doomed.url)
    killer.join()
    assert failed.returncode == 2, failed.stderr
    assert "connection failed after 1 retries" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "bank.json").exists()
    with sqlite3.connect(cache) as db:
        finished = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert 6 <= finished < 24

    revived = LlamaServer(smollm2_path, tmp_path / "revived.log")
    counter = FaultProxy(revived.port)
    try:
        done = _cmalign(*args, "--base-url", counter.url)
        assert done.returncode == 0, done.stderr
        assert counter.seen == 24 - finished  # no finished item was asked again
        assert f"{finished} from the cache, {24 - finished} sent" in done.stderr
    finally:
        counter.close()
        revived.stop()
    bank = json.loads((tmp_path / "bank.json").read_text())
    assert bank["annotator"].startswith(f"openai:{MODEL_ALIAS}:vanilla:") and len(bank["samples"]) == 24


def test_the_api_key_is_sent_but_never_printed_or_stored(proxy, preferences, tmp_path):
    result = _cmalign("fit", str(preferences), "-o", str(tmp_path / "bank.json"), "--annotator",
                      f"openai:{MODEL_ALIAS}", "--base-url", proxy.url, "--cache", str(tmp_path / "c.sqlite"),
                      env={"OPENAI_API_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    assert proxy.authorization == {f"Bearer {SECRET}"}
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.stdout + result.stderr
    failed = _cmalign("fit", str(preferences), "-o", str(tmp_path / "b2.json"), "--annotator",
                      f"openai:{MODEL_ALIAS}", "--base-url", "http://127.0.0.1:9/v1", "--cache", "none",
                      "--retries", "0", env={"OPENAI_API_KEY": SECRET})
    assert failed.returncode == 2 and "connection failed" in failed.stderr and SECRET not in failed.stderr


def test_a_rejected_key_is_a_clear_error_that_does_not_echo_it(proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    proxy.default = "401"
    with pytest.raises(BackendError, match="HTTP 401: Incorrect API key provided") as error:
        backend(proxy.url, tmp_path).complete([request("play jazz")])
    assert SECRET[:8] not in str(error.value) and SECRET[-4:] not in str(error.value)
    assert proxy.seen == 1  # not retried
    monkeypatch.delenv("OPENAI_API_KEY")
    keyless = OpenAIChatBackend("gpt-4o-mini", base_url="https://api.openai.com/v1",
                                cache=ResponseCache(tmp_path / "keyless.sqlite"))
    with keyless.dry() as plan:                  # a dry run sends nothing, so it needs no key
        keyless.complete([request("play jazz")])
    assert plan.requests == 1
    with pytest.raises(BackendError, match=r"needs an API key: set \$OPENAI_API_KEY"):
        keyless.complete([request("play jazz")])


def test_bench_through_the_server_then_a_rerun_makes_no_call(proxy, tmp_path):
    args = ["bench", "--dataset", "massive_scenario", "--budget", "n=12", "--seed", "0", "--limit", "6",
            "--annotator", f"openai:{MODEL_ALIAS}", "--base-url", proxy.url, "--strategies", "vanilla,fot",
            "--json", "--cache", str(tmp_path / "cache.sqlite")]
    first = _cmalign(*args)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    asked = ["cm", "cm_remap", "cm_marg", "cm_ibank", "cm_stack", "cm_best"]  # every method that asks the model
    assert list(result["methods"]) == ["vanilla", *(f"vanilla+{m}" for m in asked),
                                       "fot", *(f"fot+{m}" for m in asked), "knn", "logreg"]
    assert all("ece" in result["methods"][f"{x}+{m}"] for x in ("vanilla", "fot") for m in asked[2:])
    vanilla, fot = result["methods"]["vanilla"], result["methods"]["fot"]
    assert vanilla["annotator_calls"] == fot["annotator_calls"] == 6
    assert fot["annotator_tokens"] > vanilla["annotator_tokens"] > 6 * 20  # the examples cost tokens
    assert result["methods"]["fot+cm"]["fit_annotator_calls"] == 12
    assert result["usage"]["sent"] == proxy.seen > 0

    second = _cmalign(*args)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["usage"]["sent"] == 0 and proxy.seen == result["usage"]["sent"]

    def timeless(methods):  # the same numbers, but never the same seconds
        return {name: {k: v for k, v in m.items() if k != "fit_seconds"} for name, m in methods.items()}

    assert timeless(again["methods"]) == timeless(result["methods"])


def test_fit_then_annotate_with_a_chat_model(proxy, preferences, tmp_path):
    common = ["--annotator", f"openai:{MODEL_ALIAS}", "--base-url", proxy.url, "--cache", str(tmp_path / "c.sqlite"),
              "--strategy", "fot", "--shots", "2"]
    fitted = _cmalign("fit", str(preferences), "-o", str(tmp_path / "bank.json"), *common)
    assert fitted.returncode == 0, fitted.stderr
    unlabelled = tmp_path / "new.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["wake me up at 6", "any rain later"]))
    done = _cmalign("annotate", str(unlabelled), "--bank", str(tmp_path / "bank.json"), "-o",
                    str(tmp_path / "out.jsonl"), *common)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["wake me up at 6", "any rain later"]
    # the default for a chat model too: the combined model, a label of the set and a confidence for each
    labels = {json.loads(line)["label"] for line in preferences.read_text().splitlines()}
    assert all(r["method"] == "cm_best" and r["label"] in labels and 0 < r["confidence"] <= 1 for r in rows), rows
    # the bank belongs to fot with 2 shots: another strategy or another k is refused
    other = _cmalign("annotate", str(unlabelled), "--bank", str(tmp_path / "bank.json"), "-o",
                     str(tmp_path / "o2.jsonl"), *common[:-4], "--strategy", "vanilla")
    assert other.returncode == 2 and "fitted with annotator" in other.stderr


def _plan(stderr: str) -> tuple[int, int]:
    """(requests, prompt tokens) from a dry run's plan line."""
    found = re.search(r"dry run: \d+ requests, \d+ from the cache, (\d+) would be sent \(about (\d+) prompt tokens",
                      stderr)
    assert found, stderr
    return int(found[1]), int(found[2])


def _spent(stderr: str) -> tuple[int, int]:
    """(sent, prompt tokens) from a run's usage line."""
    found = re.search(r"(\d+) sent \((\d+) prompt", stderr)
    assert found, stderr
    return int(found[1]), int(found[2])


def test_a_dry_run_sends_nothing_and_counts_what_the_real_run_sends(proxy, tmp_path):
    preferences = write_preferences(tmp_path / "prefs.jsonl", 24)
    bank = tmp_path / "bank.json"
    common = ["--annotator", f"openai:{MODEL_ALIAS}", "--base-url", proxy.url, "--cache", str(tmp_path / "c.sqlite"),
              "--strategy", "cot"]
    dry = _cmalign("fit", str(preferences), "-o", str(bank), *common, "--dry-run", "--max-calls", "10")
    assert dry.returncode == 0, dry.stderr
    assert proxy.seen == 0 and not bank.exists()
    planned, _ = _plan(dry.stderr)
    assert "more than --max-calls 10 allows" in dry.stderr
    # cot asks a reason per distinct example, then the answer: the dry run's empty reasons change
    # the answers' prompts but not how many there are
    fitted = _cmalign("fit", str(preferences), "-o", str(bank), *common)
    assert fitted.returncode == 0, fitted.stderr
    assert _spent(fitted.stderr)[0] == planned == proxy.seen > 24

    from cmalign.data import load_bundled

    texts = [i.text for i in load_bundled("massive_scenario").small[100:112]]
    unlabelled = tmp_path / "new.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:6]))
    assert _cmalign("annotate", str(unlabelled), "--bank", str(bank), "-o", str(tmp_path / "a.jsonl"),
                    *common).returncode == 0
    unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))  # half of it cached now
    seen = proxy.seen
    dry = _cmalign("annotate", str(unlabelled), "--bank", str(bank), "-o", str(tmp_path / "b.jsonl"), *common,
                   "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert proxy.seen == seen and not (tmp_path / "b.jsonl").exists()
    planned, tokens = _plan(dry.stderr)
    done = _cmalign("annotate", str(unlabelled), "--bank", str(bank), "-o", str(tmp_path / "b.jsonl"), *common)
    assert done.returncode == 0, done.stderr
    sent, sent_tokens = _spent(done.stderr)
    assert planned == sent == proxy.seen - seen and 6 <= sent <= 12
    # the estimate has learnt the server's tokens per character from the fit's answers in the cache
    assert abs(tokens - sent_tokens) <= 0.2 * sent_tokens


def test_a_fit_whose_every_request_is_refused_fails_with_the_servers_reason(proxy, preferences, tmp_path):
    proxy.default = "400"
    result = _cmalign("fit", str(preferences), "-o", str(tmp_path / "bank.json"), "--annotator",
                      f"openai:{MODEL_ALIAS}", "--base-url", proxy.url, "--cache", str(tmp_path / "c.sqlite"))
    assert result.returncode == 2 and not (tmp_path / "bank.json").exists()
    assert "refused every request about the 10 preference samples; the last refusal: injected refusal" in result.stderr


def test_credentials_in_the_url_and_a_part_masked_key_are_never_shown(proxy, tmp_path, monkeypatch):
    key = "tok_live_51HxQ9abcdefZ3456"  # not sk-shaped: the server echoes its first 8 and last 4
    monkeypatch.setenv("OPENAI_API_KEY", key)
    proxy.default = "401"
    with pytest.raises(BackendError) as error:
        backend(proxy.url, tmp_path).complete([request("play jazz")])
    assert "HTTP 401: Incorrect API key provided: [key]" in str(error.value)
    assert key[:8] not in str(error.value) and key[-4:] not in str(error.value)
    failed = _cmalign("fit", str(write_preferences(tmp_path / "p.jsonl", 4)), "-o", str(tmp_path / "b.json"),
                      "--annotator", f"openai:{MODEL_ALIAS}", "--base-url", "http://bob:hunter2@127.0.0.1:9/v1",
                      "--cache", "none", "--retries", "0")
    assert failed.returncode == 2 and "http://***@127.0.0.1:9/v1" in failed.stderr
    assert "hunter2" not in failed.stderr and "bob" not in failed.stderr


def test_the_response_cache_is_readable_by_its_owner_alone(tmp_path):
    fresh = ResponseCache(tmp_path / "new" / "cache.sqlite")
    fresh.close()
    assert (tmp_path / "new" / "cache.sqlite").stat().st_mode & 0o777 == 0o600
    old = tmp_path / "old.sqlite"
    old.touch(mode=0o644)
    old.chmod(0o644)
    ResponseCache(old).close()
    assert old.stat().st_mode & 0o777 == 0o600


def test_a_cache_of_none_keeps_answers_in_memory_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = ResponseCache(None)
    assert cache.path == ":memory:" and list(tmp_path.iterdir()) == []
    cache.close()


def test_label_scores_from_the_servers_log_probabilities_then_a_rerun_sends_nothing(proxy, tmp_path, capsys):
    args = ["bench", "--dataset", "massive_scenario", "--budget", "n=12", "--seed", "0", "--limit", "6",
            "--annotator", f"openai-score:{MODEL_ALIAS}", "--base-url", proxy.url, "--json",
            "--cache", str(tmp_path / "cache.sqlite")]
    code, out, err = _main(capsys, *args)
    assert code == 0, err
    result = json.loads(out)
    methods = result["methods"]
    assert {"base", "cm", "cm_remap", "cm_marg", "cm_best", "knn", "logreg"} <= set(methods)
    assert all("ece" in methods[m] for m in ("base", "cm_marg", "cm_stack", "cm_best"))
    # 18 labels: one request an item, and the three content-free texts once; CM's re-asks read the
    # scores already paid for
    assert methods["base"]["annotator_calls"] == methods["cm"]["annotator_calls"] == 6 + 3
    assert methods["cm"]["fit_annotator_calls"] == 12 and methods["base"]["annotator_tokens"] > 6 * 50
    assert result["usage"]["sent"] == proxy.seen == 21
    assert "21 requests, 0 from the cache, 21 sent" in err

    code, out, err = _main(capsys, *args)
    assert code == 0, err
    again = json.loads(out)
    assert again["usage"]["sent"] == 0 and proxy.seen == 21

    def timeless(methods):
        return {name: {k: v for k, v in m.items() if k != "fit_seconds"} for name, m in methods.items()}

    assert timeless(again["methods"]) == timeless(methods)


def test_a_large_label_set_is_scored_in_pages_by_the_real_server(server, tmp_path):
    from cmalign.annotators.openai_score import OpenAILabelScorer
    from cmalign.data import load_bundled
    from cmalign.labels import LabelSet

    labels = LabelSet.of(load_bundled("banking77").labels.labels[:45])
    scorer = OpenAILabelScorer(backend(server.url, tmp_path))
    texts = ["my card has not arrived yet", "I want to top up by bank transfer"]
    answers = scorer.annotate(texts, labels)
    # three pages of 15 labels and "none of these" each, for the two texts and the three content-free ones
    assert scorer.backend.usage.sent == 15
    for a in answers:
        assert a.label in labels and a.scores.shape == (45,) and np.all(a.scores > 0)
        assert a.scores.sum() == pytest.approx(1.0) and a.label == labels.labels[a.scores.argmax()]
    within = [tuple(labels.labels[:2]), tuple(labels.labels[40:43])]
    again = scorer.annotate(texts, labels, candidates=within)
    assert scorer.backend.usage.sent == 15 and [a.label in c for a, c in zip(again, within)] == [True, True]


def test_fit_plans_then_annotates_through_label_scores(proxy, preferences, tmp_path, capsys):
    common = ["--annotator", f"openai-score:{MODEL_ALIAS}", "--base-url", proxy.url,
              "--cache", str(tmp_path / "c.sqlite")]
    bank = tmp_path / "bank.json"
    code, _, err = _main(capsys, "fit", str(preferences), "-o", str(bank), *common, "--dry-run")
    assert code == 0, err
    assert _plan(err)[0] == 10 + 3 and proxy.seen == 0 and not bank.exists()  # and the content-free texts
    code, _, err = _main(capsys, "fit", str(preferences), "-o", str(bank), *common)
    assert code == 0, err
    assert _spent(err)[0] == 13 == proxy.seen
    assert json.loads(bank.read_text())["annotator"].startswith(f"openai:{MODEL_ALIAS}:option-scoring:")
    unlabelled = tmp_path / "new.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["wake me up at 6", "any rain later"]))
    code, _, err = _main(capsys, "annotate", str(unlabelled), "--bank", str(bank), "-o", str(tmp_path / "out.jsonl"),
                         *common)
    assert code == 0, err
    assert proxy.seen == 15  # one request an item (18 labels), the learning step's included
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    labels = {json.loads(line)["label"] for line in preferences.read_text().splitlines()}
    assert all(r["method"] == "cm_best" and r["label"] in labels and 0 < r["confidence"] <= 1 for r in rows), rows


def test_a_server_without_log_probabilities_is_one_clear_error(smollm2_path, proxy, preferences, tmp_path, capsys):
    proxy.default = "strip-logprobs"
    args = ["fit", str(preferences), "-o", str(tmp_path / "bank.json"), "--annotator",
            f"openai-score:{MODEL_ALIAS}", "--cache", "none", "--retries", "0"]
    code, _, err = _main(capsys, *args, "--base-url", proxy.url)
    assert code == 2 and err.splitlines()[-1].startswith("cmalign: error: ") and "Traceback" not in err, err
    assert f"openai:{MODEL_ALIAS} at {proxy.url} gives no token log-probabilities (the reply had none)" in err
    assert f"use --annotator openai:{MODEL_ALIAS}" in err
    off = LlamaServer(smollm2_path, tmp_path / "off.log", "--logits_all", "false")
    try:
        code, _, err = _main(capsys, *args, "--base-url", off.url)
    finally:
        off.stop()
    assert code == 2 and err.splitlines()[-1].startswith("cmalign: error: ") and "Traceback" not in err, err
    assert f"at {off.url} gives no token log-probabilities (HTTP 500: logprobs is not supported" in err
    assert not (tmp_path / "bank.json").exists()
