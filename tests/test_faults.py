"""A misbehaving OpenAI-compatible server on loopback: replies malformed, empty, NaN, oversize,
slow and cut off, in scripted sequences. Whatever it does, the outcome is a clear error or a
correct retry: never a wrong label, never a bad row in the response cache (every row is opened and
checked after each test)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cmalign.annotators.openai_score import OpenAILabelScorer
from cmalign.chat.backend import BackendError, BudgetExceeded, ChatRequest, ResponseCache
from cmalign.chat.openai_api import OpenAIChatBackend
from cmalign.errors import CmalignError
from cmalign.labels import LabelSet
from cmalign.prompting import ChatAnnotator

from llm_server import FaultServer

LABELS = LabelSet.of(["alarm", "music", "weather"])
TEXTS = ["set an alarm for six", "play some music", "weather in Paris", "another alarm please"]
SECRET = "sk-cmalign-test-5ecret-do-not-leak"


@pytest.fixture
def fake():
    server = FaultServer()
    yield server
    server.close()


def backend(fake: FaultServer, tmp_path: Path, **options) -> OpenAIChatBackend:
    options = {"concurrency": 1, "timeout": 10.0, "max_retries": 2} | options
    return OpenAIChatBackend("fake", base_url=fake.url, cache=ResponseCache(tmp_path / "cache.sqlite"), **options)


def scorer(chat: OpenAIChatBackend) -> OpenAILabelScorer:
    """openai-score without its content-free requests: each request here is a text's, in the order the
    fault plans follow (the calibration is tested in test_openai_score.py)."""
    return OpenAILabelScorer(chat, calibrate=False)


def annotator(kind: str, chat: OpenAIChatBackend):
    return ChatAnnotator(chat) if kind == "chat" else scorer(chat)


def expected(text: str) -> str:
    return next(label for label in LABELS.labels if label in text)


def cache_rows(path: Path) -> list[dict]:
    """Every row of the cache, each checked: a valid answer, and the right one for its request."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute("SELECT * FROM completions")]
    for row in rows:
        assert isinstance(row["text"], str) and len(row["text"]) < 1000, row
        assert isinstance(row["prompt_tokens"], int) and isinstance(row["completion_tokens"], int), row
        assert row["finish_reason"] == "stop", row
        request = json.loads(row["request"])
        label, options = FaultServer.right(request)
        if row["logprobs"] is None:
            assert row["text"] == label, row
        else:
            tokens = json.loads(row["logprobs"], parse_constant=lambda c: pytest.fail(f"{c} in the cache"))
            letter = next(code for code, option in options if option == label)
            assert row["text"] == letter and tokens[0][0] == letter, row
            for _, logprob, alternatives in tokens:
                assert all(math.isfinite(lp) and lp <= 0 for lp in (logprob, *(a[1] for a in alternatives))), row
    return rows


# -- a fault the server may not repeat: retried, then the right answer ---------------------------

RETRIED = ["empty-choices", "null-content", "html", "not-json", "error-200", "reset", "reset-mid-body", "500", "429"]


@pytest.mark.parametrize("kind", ["chat", "score"])
@pytest.mark.parametrize("fault", RETRIED)
def test_a_reply_the_server_may_get_right_next_time_is_retried_into_the_right_answer(fake, tmp_path, fault, kind):
    fake.plan = [fault, fault]
    chat = backend(fake, tmp_path)
    (answer,) = annotator(kind, chat).annotate([TEXTS[1]], LABELS)
    assert answer.label == "music"
    assert fake.seen == 3 and chat.attempts == 3 and chat.usage.sent == 1
    assert len(cache_rows(tmp_path / "cache.sqlite")) == 1


@pytest.mark.parametrize("fault, message", [
    ("empty-choices", "the reply has no choices after 2 retries"),
    ("null-content", r"the reply has no content after 2 retries \(null\)"),
    ("html", r"the reply is not JSON after 2 retries \(text/html: '<html><body><h1>502 Bad Gateway"),
    ("not-json", r"the reply is not JSON after 2 retries \('\{\"choices\""),
    ("error-200", "the reply is an error: upstream overloaded after 2 retries"),
    ("reset", r"connection failed after 2 retries \("),
    ("reset-mid-body", r"connection failed while reading the reply after 2 retries \("),
])
def test_a_server_that_keeps_failing_is_one_clear_error_and_nothing_is_cached(fake, tmp_path, fault, message):
    fake.plan, fake.default = ["ok"], fault
    chat = backend(fake, tmp_path)
    with pytest.raises(BackendError, match=f"^openai:fake at {fake.url}: {message}") as error:
        ChatAnnotator(chat).annotate(TEXTS[:2], LABELS)
    assert "\n" not in str(error.value)
    assert fake.seen == 1 + 3  # the first text answered; the second tried three times
    assert [r["text"] for r in cache_rows(tmp_path / "cache.sqlite")] == ["alarm"]


def test_a_slow_reply_times_out_and_is_asked_again(fake, tmp_path):
    fake.plan, fake.delay = ["slow"], 3.0
    chat = backend(fake, tmp_path, timeout=1.0)
    assert ChatAnnotator(chat).annotate([TEXTS[2]], LABELS)[0].label == "weather"
    assert fake.seen == 2 and len(cache_rows(tmp_path / "cache.sqlite")) == 1
    fake.default = "slow"
    with pytest.raises(BackendError, match=r"no answer within 1 s, 3 times$"):
        ChatAnnotator(chat).annotate([TEXTS[0]], LABELS)
    assert len(cache_rows(tmp_path / "cache.sqlite")) == 1


def test_a_server_empty_one_time_in_three_still_labels_every_item_right(fake, tmp_path):
    texts = [f"{label} request number {i}" for i in range(8) for label in LABELS.labels]
    fake.plan = ["ok", "ok", "empty-choices"] * 12
    chat = backend(fake, tmp_path, concurrency=4, max_retries=3)
    answers = ChatAnnotator(chat).annotate(texts, LABELS)
    assert [a.label for a in answers] == [expected(t) for t in texts]
    rows = cache_rows(tmp_path / "cache.sqlite")
    assert len(rows) == len(texts) and fake.seen > len(texts)
    # a rerun against a healthy server reads the same right answers from the cache, and sends nothing
    again = backend(fake, tmp_path)
    seen = fake.seen
    assert [a.label for a in ChatAnnotator(again).annotate(texts, LABELS)] == [a.label for a in answers]
    assert fake.seen == seen


def test_a_fit_against_a_server_that_is_sometimes_empty_keeps_no_empty_answer_in_its_bank(fake, tmp_path, capsys):
    from cmalign.cli import main

    preferences = tmp_path / "prefs.jsonl"
    texts = [f"{label} please, item {i}" for i in range(4) for label in LABELS.labels]
    preferences.write_text("".join(json.dumps({"text": t, "label": expected(t)}) + "\n" for t in texts))
    fake.plan = ["empty-choices", "ok", "null-content"] * 8
    code = main(["fit", str(preferences), "-o", str(tmp_path / "bank.json"), "--annotator", "openai:fake",
                 "--base-url", fake.url, "--cache", str(tmp_path / "cache.sqlite"), "--concurrency", "1"])
    assert code == 0, capsys.readouterr().err
    bank = json.loads((tmp_path / "bank.json").read_text())
    assert [(s["label"], s["answer"]) for s in bank["samples"]] == [(expected(t), expected(t)) for t in texts]
    assert len(cache_rows(tmp_path / "cache.sqlite")) == len(texts)


# -- a reply that is no answer, and would be none again: an error of the request -----------------

@pytest.mark.parametrize("fault, value", [("nan", "nan"), ("inf", "inf"), ("logprob-1000", "1000.0"),
                                          ("positive", "0.5"), ("null-logprob", "None")])
def test_log_probabilities_that_are_no_probabilities_are_an_error_and_never_cached(fake, tmp_path, fault, value):
    fake.plan = ["ok", fault]
    chat = backend(fake, tmp_path)
    with pytest.raises(BackendError, match=f"^openai:fake at {fake.url}: the reply gives the token 'B' a "
                                           f"log-probability of {value}") as error:
        scorer(chat).annotate([TEXTS[0], TEXTS[1]], LABELS)
    assert "\n" not in str(error.value)
    assert fake.seen == 2  # not retried: the server would say it again
    assert [r["text"] for r in cache_rows(tmp_path / "cache.sqlite")] == ["A"]


def test_an_alternative_that_cannot_follow_is_kept_as_a_finite_log_probability(fake, tmp_path):
    fake.plan = ["minus-inf"]
    chat = backend(fake, tmp_path)
    (answer,) = scorer(chat).annotate([TEXTS[2]], LABELS)
    assert answer.label == "weather" and answer.scores[1] < 1e-3 < answer.scores[2]
    (row,) = cache_rows(tmp_path / "cache.sqlite")
    assert json.loads(row["logprobs"])[0][2][-1] == ["B", -9999.0]


def test_a_healthy_server_gets_the_requests_it_always_got(fake, tmp_path):
    ChatAnnotator(backend(fake, tmp_path)).annotate([TEXTS[0]], LABELS)
    scorer(backend(fake, tmp_path)).annotate([TEXTS[0]], LABELS)
    chat, scored = fake.bodies
    assert set(chat) == {"model", "messages", "max_tokens", "temperature", "top_p", "seed"}
    assert (chat["model"], chat["max_tokens"], chat["temperature"], chat["top_p"], chat["seed"]) == ("fake", 24, 0.0,
                                                                                                   1.0, 0)
    assert set(scored) == set(chat) | {"logprobs", "top_logprobs"} and scored["top_logprobs"] == 20


def test_top_logprobs_naming_no_option_letter_are_an_error_never_the_first_label(fake, tmp_path):
    fake.plan = ["no-letter"]
    chat = backend(fake, tmp_path)
    with pytest.raises(CmalignError, match=r"the reply names no option letter A-C among its likely first tokens "
                                           r"\('The', 'I', 'Sure'\): the model does not answer with a letter"):
        scorer(chat).annotate([TEXTS[2]], LABELS)
    assert cache_rows(tmp_path / "cache.sqlite") == []
    # such a reply kept by an older cmalign is asked again, and the server's right answer replaces it
    scoring = scorer(chat)
    (request,) = scoring.requests(TEXTS[2], LABELS)
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        db.execute("INSERT INTO completions VALUES (?, 'openai:fake', ?, 'The', 40, 1, 'stop', 0, ?)",
                   (request.key(chat.model_id), ResponseCache.record(chat.model_id, request),
                    json.dumps([["The", -0.5, [["The", -0.5], ["I", -1.2]]]])))
    assert scoring.annotate([TEXTS[2]], LABELS)[0].label == "weather"
    assert fake.seen == 2 and len(cache_rows(tmp_path / "cache.sqlite")) == 1


@pytest.mark.parametrize("fault", ["oversize", "oversize-unsized"])
def test_a_reply_past_the_size_cap_is_refused_and_not_kept(fake, tmp_path, fault):
    fake.default = fault
    chat = backend(fake, tmp_path)
    with pytest.raises(BackendError, match=r"bytes, past the 1,048,576 that max_reply_bytes allows"):
        ChatAnnotator(chat).annotate([TEXTS[0]], LABELS)
    assert fake.seen == 1 and cache_rows(tmp_path / "cache.sqlite") == []
    fake.oversize = 3000
    big = OpenAIChatBackend("fake", base_url=fake.url, cache=ResponseCache(), max_reply_bytes=2000)
    with pytest.raises(BackendError, match="past the 2,000 that max_reply_bytes allows"):
        big.complete([ChatRequest.of([{"role": "user", "content": "alarm"}])])
    bigger = OpenAIChatBackend("fake", base_url=fake.url, cache=ResponseCache(), max_reply_bytes=8000)
    assert bigger.complete([ChatRequest.of([{"role": "user", "content": "alarm"}])])[0].text == "x" * 3000
    with pytest.raises(CmalignError, match="max_reply_bytes 0: must be a whole number of bytes above 0"):
        OpenAIChatBackend("fake", base_url=fake.url, max_reply_bytes=0)


def test_a_plain_text_401_keeps_the_servers_reason_and_never_the_key(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake.default = "401-text"
    with pytest.raises(BackendError, match="HTTP 401: Unauthorized: this key is not valid for the project "
                                           r"\(key \[key\]\)$") as error:
        ChatAnnotator(backend(fake, tmp_path)).annotate([TEXTS[0]], LABELS)
    assert SECRET[:8] not in str(error.value) and SECRET[-4:] not in str(error.value)
    assert fake.seen == 1  # not retried
    fake.text_401 = "<html><head><title>401 Authorization Required</title></head><body>nginx</body></html>"
    with pytest.raises(BackendError, match=r"HTTP 401: 401 Authorization Required nginx \(key \[key\]\)"):
        ChatAnnotator(backend(fake, tmp_path)).annotate([TEXTS[0]], LABELS)


# -- the call cap is on what a server can bill: every attempt ------------------------------------

def test_max_calls_caps_the_http_requests_that_reach_the_server_retries_included(fake, tmp_path):
    fake.plan = ["500", "empty-choices", "reset"]
    chat = backend(fake, tmp_path, max_calls=4, max_retries=5)
    with pytest.raises(BudgetExceeded, match=r"the 4 requests max_calls allows are spent \(retries of failing "
                                             "requests count"):
        ChatAnnotator(chat).annotate(TEXTS[:2], LABELS)  # the first takes four attempts, the second one more
    assert fake.seen == 4 and chat.attempts == 4
    assert [r["text"] for r in cache_rows(tmp_path / "cache.sqlite")] == ["alarm"]
    # many requests in flight, a server failing every one: still no more than the cap
    fake.default = "500"
    many = backend(fake, tmp_path, max_calls=7, max_retries=5, concurrency=4)
    seen = fake.seen
    with pytest.raises(BudgetExceeded):
        ChatAnnotator(many).annotate([f"alarm {i}" for i in range(6)], LABELS)
    assert fake.seen - seen == 7
    # before anything is sent, a step that needs more new requests than remain is refused
    with pytest.raises(BudgetExceeded, match=r"needs 3 new requests .* only 2 of the 2 allowed \(max_calls\)"):
        ChatAnnotator(backend(fake, tmp_path, max_calls=2)).annotate(TEXTS[1:], LABELS)


def test_the_help_says_max_calls_counts_retries():
    from cmalign.cli import build_parser

    help = build_parser()._subparsers._group_actions[0].choices["fit"].format_help()
    assert "retries included" in " ".join(help.split())


# -- the cache: a row that cannot be read, and a disk that is full -------------------------------

def test_a_cache_row_that_cannot_be_read_is_dropped_and_asked_again(fake, tmp_path):
    path = tmp_path / "cache.sqlite"
    first = backend(fake, tmp_path)
    scoring = scorer(first)
    assert [a.label for a in scoring.annotate(TEXTS, LABELS)] == [expected(t) for t in TEXTS]
    assert fake.seen == 4
    keys = [r.key(first.model_id) for t in TEXTS for r in scoring.requests(t, LABELS)]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE completions SET logprobs = 'not json' WHERE key = ?", (keys[0],))
        db.execute("UPDATE completions SET logprobs = '[[\"A\", NaN, []]]' WHERE key = ?", (keys[1],))
        db.execute("UPDATE completions SET text = X'00ff' WHERE key = ?", (keys[2],))
        db.execute("UPDATE completions SET prompt_tokens = 'many' WHERE key = ?", (keys[3],))
    again = backend(fake, tmp_path)
    assert [a.label for a in scorer(again).annotate(TEXTS, LABELS)] == [expected(t) for t in TEXTS]
    assert fake.seen == 8 and again.usage.cache_hits == 0
    assert len(cache_rows(path)) == 4


def test_a_full_cache_is_one_line_error_and_keeps_what_it_stored(fake, tmp_path):
    # sqlite's own limit on a database's pages gives the error a full disk gives (SQLITE_FULL)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    chat = OpenAIChatBackend("fake", base_url=fake.url, cache=cache, concurrency=1)
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count = {pages + 3}")
    texts = [f"alarm {i} " + "x" * 3000 for i in range(20)]
    with pytest.raises(CmalignError, match=r"cache.sqlite: cannot write the response cache \(database or disk is "
                                           r"full\); every answer stored before is kept in it$"):
        ChatAnnotator(chat).annotate(texts, LABELS)
    cache.close()
    rows = cache_rows(tmp_path / "cache.sqlite")
    assert 0 < len(rows) < len(texts)
    assert [a.label for a in ChatAnnotator(backend(fake, tmp_path)).annotate(texts, LABELS)] == ["alarm"] * 20


CHILD = """
import sys
sys.path[:0] = {paths!r}
from cmalign.chat.backend import ResponseCache
from cmalign.chat.openai_api import OpenAIChatBackend
from cmalign.errors import CmalignError
from cmalign.labels import LabelSet
from cmalign.prompting import ChatAnnotator

path = {folder!r} + "/cache.sqlite"
chat = OpenAIChatBackend("fake", base_url={url!r}, cache=ResponseCache(path), concurrency=1)
texts = ["alarm %d " % i + "x" * 4000 for i in range(200)]
try:
    ChatAnnotator(chat).annotate(texts, LabelSet.of(["alarm", "music"]))
    print("no error")
except CmalignError as exc:
    print("error:", exc)
chat.cache.close()
import sqlite3
rows = sqlite3.connect(path).execute("SELECT text FROM completions").fetchall()
print("rows:", len(rows), all(text == "alarm" for (text,) in rows))
"""


def test_the_cache_on_a_full_disk_is_one_line_error(fake, tmp_path):
    """A real full disk: a 256 KiB tmpfs, mounted in a user and mount namespace of a child process."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"],
                                         capture_output=True).returncode != 0:
        pytest.skip("no unprivileged mount namespace here: test_a_full_cache_is_one_line_error covers it")
    folder = tmp_path / "small"
    folder.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(paths=[p for p in sys.path if p], folder=str(folder), url=fake.url))
    shell = f"mount -t tmpfs -o size=256k tmpfs {folder} && exec {sys.executable} {script}"
    result = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", shell],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"error: {folder}/cache.sqlite: cannot write the response cache (database or disk "
                               "is full); every answer stored before is kept in it"), result.stdout
    count, right = lines[1].removeprefix("rows: ").split()
    assert 0 < int(count) < 200 and right == "True"


# -- settings refused where they are made --------------------------------------------------------

@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:99999/v1", "Port out of range 0-65535"),
    ("http://127.0.0.1:80a/v1", "Port could not be cast to integer value"),
    ("127.0.0.1:8080/v1", "not an http:// or https:// URL with a host"),
    ("http://bob:hunter2@127.0.0.1:123456/v1", "Port out of range"),
])
def test_a_base_url_no_client_can_reach_is_refused_when_the_backend_is_built(url, problem):
    with pytest.raises(CmalignError, match=f"^base_url '.*': {problem}") as error:
        OpenAIChatBackend("m", base_url=url)
    assert "hunter2" not in str(error.value)


def test_bad_settings_on_the_command_line_are_one_line_each(tmp_path, capsys):
    from cmalign.cli import main

    preferences = tmp_path / "prefs.jsonl"
    preferences.write_text("".join(json.dumps({"text": t, "label": expected(t)}) + "\n" for t in TEXTS))
    common = ["fit", str(preferences), "-o", str(tmp_path / "bank.json"), "--annotator", "openai:m", "--cache", "none"]
    for extra, problem in [(["--base-url", "http://127.0.0.1:70000/v1"], "--base-url 'http://127.0.0.1:70000/v1': "
                                                                         "Port out of range 0-65535"),
                           (["--temperature", "nan", "--base-url", "http://127.0.0.1:9/v1"],
                            "--temperature nan: must be a finite number, 0 or more (0: greedy)"),
                           (["--top-p", "-5", "--base-url", "http://127.0.0.1:9/v1"],
                            "--top-p -5.0: must be above 0 and at most 1")]:
        assert main(common + extra) == 2
        assert capsys.readouterr().err == f"cmalign: error: {problem}\n"


# -- the same faults in front of a real server (llama.cpp serving SmolLM2) -----------------------

@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    from llm_server import LlamaServer

    server = LlamaServer(smollm2_path, tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def proxy(server):
    from llm_server import FaultProxy

    proxy = FaultProxy(server.port)
    yield proxy
    proxy.close()


def test_faults_before_a_real_servers_answer_leave_its_answer_in_the_cache(proxy, tmp_path):
    from llm_server import MODEL_ALIAS

    request = ChatRequest.of([{"role": "system", "content": "Label the text: alarm, music or weather."},
                              {"role": "user", "content": "play jazz"}], max_tokens=8)
    proxy.plan = ["empty-choices", "null-content", "html"]
    faulty = OpenAIChatBackend(MODEL_ALIAS, base_url=proxy.url, cache=ResponseCache(tmp_path / "c.sqlite"),
                               max_retries=3)
    answer = faulty.complete([request])[0]
    # the real server's fourth answer (llama.cpp's greedy answers to one prompt may differ in a
    # last token from one request to the next, so it is not compared with another request's)
    assert answer.text and answer.completion_tokens > 0 and answer.finish_reason in ("stop", "length")
    assert proxy.seen == 4 and proxy.forwarded == 3  # the page was the proxy's own
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("SELECT text FROM completions").fetchall() == [(answer.text,)]


def test_nan_log_probabilities_from_a_real_server_stop_openai_score_and_are_not_cached(proxy, tmp_path):
    from llm_server import MODEL_ALIAS

    proxy.plan = ["pass", "nan-logprobs"]
    scored = scorer(OpenAIChatBackend(MODEL_ALIAS, base_url=proxy.url, concurrency=1,
                                    cache=ResponseCache(tmp_path / "c.sqlite")))
    with pytest.raises(BackendError, match=f"^openai:{MODEL_ALIAS} at {proxy.url}: the reply gives the token .* a "
                                           "log-probability of nan"):
        scored.annotate(["wake me at seven", "play some jazz"], LABELS)
    assert proxy.seen == 2
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        (logprobs,) = db.execute("SELECT logprobs FROM completions").fetchone()
    assert "NaN" not in logprobs and all(math.isfinite(t[1]) for t in json.loads(logprobs))
