"""Chat models as annotators' engines: requests, a persistent response cache, a spending guard.

A :class:`ChatBackend` answers chat requests (an OpenAI-compatible server, a local model). Every
request goes through :meth:`ChatBackend.complete`, which

- answers from the :class:`ResponseCache` when the same request was answered before, so a rerun
  costs nothing and an interrupted run resumes where it stopped (each answer is written as soon as
  it arrives);
- refuses, before sending anything, a batch that would take the run past ``max_calls``, and stops
  before any attempt (a retry is one) that would send more than ``max_calls`` HTTP requests: the
  cap is on what a server can bill, retries included;
- keeps out of the cache whatever is not a valid answer (see :func:`completion_problem`), and
  drops a stored row that cannot be read, so that it is asked again;
- counts requests, cache hits and tokens in :class:`Usage`;
- with ``dry_run`` set, sends nothing: each request the cache cannot answer is counted in a
  :class:`Plan` (with its prompt tokens, estimated) and answered with an empty reply.

The cache key is everything that determines the answer: the model's identity, the messages and
the decoding parameters with the seed. It never holds an API key: none is part of a request.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import CmalignError
from ..local_models import cache_home

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class BudgetExceeded(CmalignError):
    """The next step would send more requests than ``max_calls`` allows."""


class BackendError(CmalignError):
    """The model could not be reached, kept failing after its retries, or gave a reply that is not an answer."""


# a log-probability a little above 0 is float rounding of a probability of 1; more is no probability
LOGPROB_SLACK = 1e-4
TOP_LOGPROBS = 20  # the most alternatives a token OpenAI gives


def check_sampling(temperature: float, top_p: float) -> None:
    """Refuse sampling settings no server can honour (one line naming the setting)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise CmalignError(f"{{=temperature}} {temperature}: must be a finite number, 0 or more (0: greedy)")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise CmalignError(f"{{=top_p}} {top_p}: must be above 0 and at most 1")


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request. ``temperature`` 0 means greedy decoding."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs: hashable and ordered
    max_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    top_logprobs: int = 0  # ask for each answer token's N most likely alternatives (0: none)

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_p)
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise CmalignError(f"max_tokens {self.max_tokens}: must be an integer, 1 or more")
        if not (isinstance(self.top_logprobs, int) and 0 <= self.top_logprobs <= TOP_LOGPROBS):
            raise CmalignError(f"top_logprobs {self.top_logprobs}: must be an integer from 0 to {TOP_LOGPROBS}")

    @classmethod
    def of(cls, messages: Sequence[Message], **decoding) -> ChatRequest:
        return cls(tuple((m["role"], m["content"]) for m in messages), **decoding)

    def message_dicts(self) -> list[Message]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def key(self, model: str) -> str:
        """The cache key: a digest of the model and everything in the request."""
        payload = {"model": model, **asdict(self), "messages": self.message_dicts()}
        if not self.top_logprobs:  # requests without log-probabilities keep the keys they always had
            del payload["top_logprobs"]
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class TokenChoice:
    """One token of a reply: the token, its log-probability, and its most likely alternatives
    (``(token, log-probability)`` pairs, the token itself among them), as the server gave them."""

    token: str
    logprob: float
    alternatives: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Completion:
    """A model's reply with the tokens it cost; ``cached`` when it came from the cache.

    ``logprobs`` holds a :class:`TokenChoice` per reply token when the request asked for them
    (``top_logprobs``) and the server gave them; None otherwise.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    cached: bool = False
    logprobs: tuple[TokenChoice, ...] | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def rejected(self) -> bool:
        """The server refused this request (not cached: a rerun asks again)."""
        return self.finish_reason.startswith("rejected")


def completion_problem(completion: Completion) -> str | None:
    """Why ``completion`` is not an answer that may be kept (None: it may): the cache stores and
    serves only completions this accepts."""
    c = completion
    if not isinstance(c.text, str):
        return f"the reply's text is a {type(c.text).__name__}, not a string"
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(c, name)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return f"the reply's {name} {value!r} is not a count"
    if not isinstance(c.finish_reason, str) or c.rejected or c.finish_reason == "dry-run":
        return f"the reply is no answer (finish reason {c.finish_reason!r})"
    if c.logprobs is not None:
        if not c.logprobs:
            return "the reply's log-probabilities name no token"
        for choice in c.logprobs:
            if not isinstance(choice, TokenChoice) or not isinstance(choice.token, str):
                return "the reply's log-probabilities are malformed"
            pairs = ((choice.token, choice.logprob), *choice.alternatives)
            for pair in pairs:
                if len(pair) != 2 or not isinstance(pair[0], str):
                    return "the reply's log-probabilities are malformed"
                problem = logprob_problem(pair[1])
                if problem:
                    return f"the reply gives the token {pair[0]!r} {problem}"
    return None


def logprob_problem(value: object) -> str | None:
    """Why ``value`` is not a log-probability (None: it is one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"a log-probability of {value!r}, not a number"
    if not math.isfinite(value) or value > LOGPROB_SLACK:
        return f"a log-probability of {value!r}: not the logarithm of a probability (finite, at most 0)"
    return None


@dataclass
class Usage:
    """What a backend did: requests asked for, answered from the cache, sent, and tokens sent."""

    requests: int = 0
    cache_hits: int = 0
    sent: int = 0
    prompt_tokens: int = 0      # of the requests sent (cache hits cost nothing)
    completion_tokens: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self, name: str) -> str:
        return (f"{name}: {self.requests} requests, {self.cache_hits} from the cache, {self.sent} sent "
                f"({self.prompt_tokens} prompt + {self.completion_tokens} completion tokens)")


@dataclass
class Plan:
    """What a dry run would have sent: requests, their prompt tokens (estimated) and the completion cap."""

    requests: int = 0                # would be sent
    prompt_tokens: int = 0
    max_completion_tokens: int = 0   # the sum of the requests' max_tokens: completions cannot cost more
    asked: int = 0                   # requests asked for, cache hits included
    cache_hits: int = 0

    def summary(self, name: str, max_calls: int | None = None) -> str:
        line = (f"{name}: dry run: {self.asked} requests, {self.cache_hits} from the cache, "
                f"{self.requests} would be sent (about {self.prompt_tokens} prompt tokens, "
                f"at most {self.max_completion_tokens} completion tokens)")
        if max_calls is not None and self.requests > max_calls:
            line += f"; more than {{=max_calls}} {max_calls} allows"
        return line


class ResponseCache:
    """Completions on disk (SQLite), keyed by :meth:`ChatRequest.key`; ``":memory:"`` (or None) for none.

    Each completion is committed as it is stored, so a run killed at any point keeps every answer
    it had received. The request is stored beside the answer (readable, for audits), never a key.
    """

    def __init__(self, path: str | Path | None = ":memory:") -> None:
        self.path = ":memory:" if path is None else str(path)
        if self.path != ":memory:":
            # every prompt holds the user's texts: the cache is readable by its owner alone
            Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                if os.stat(self.path).st_mode & 0o077:  # a cache an older cmalign left readable to others
                    os.chmod(self.path, 0o600)
            except OSError as exc:
                raise CmalignError(f"{self.path}: cannot create the response cache ({exc.strerror})") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "request TEXT NOT NULL, text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, "
                "completion_tokens INTEGER NOT NULL, finish_reason TEXT NOT NULL, created REAL NOT NULL, "
                "logprobs TEXT)")
            self._db.execute(  # an embeddings endpoint's vectors (float32, little-endian), by model and text
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vector BLOB NOT NULL, created REAL NOT NULL)")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(completions)")}
            if "logprobs" not in columns:  # a cache an older cmalign wrote: its answers stay valid
                self._db.execute("ALTER TABLE completions ADD COLUMN logprobs TEXT")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise CmalignError(f"{self.path}: cannot use as a response cache ({exc})") from None

    def get(self, key: str) -> Completion | None:
        """The completion stored for ``key``; None when there is none, or when the row stored cannot
        be read as a valid answer (it is dropped: the request is asked again)."""
        try:
            row = self._db.execute("SELECT text, prompt_tokens, completion_tokens, finish_reason, logprobs "
                                   "FROM completions WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise CmalignError(f"{self.path}: cannot read the response cache ({exc}); move it away to start "
                               "a new one") from None
        if row is None:
            return None
        *fields, logprobs = row
        try:
            completion = Completion(*fields, cached=True, logprobs=_logprobs_from_json(logprobs))
        except (ValueError, TypeError, RecursionError):  # a logprobs column that is no list of tokens
            completion = None
        if completion is None or completion_problem(completion):
            self.drop(key)
            return None
        return completion

    def drop(self, key: str) -> None:
        """Forget the completion stored for ``key`` (a row that cannot be read, say)."""
        self._write("DELETE FROM completions WHERE key = ?", (key,))

    @staticmethod
    def record(model: str, request: ChatRequest) -> str:
        """The request as stored beside its answer (JSON)."""
        return json.dumps({"model": model, **asdict(request), "messages": request.message_dicts()},
                          ensure_ascii=False)

    def put(self, key: str, model: str, request: ChatRequest, completion: Completion) -> None:
        """Store ``completion``; one that :func:`completion_problem` refuses is an error, never a row."""
        problem = completion_problem(completion)
        if problem:
            raise BackendError(f"{model}: a reply not kept in the response cache: {problem}")
        record = self.record(model, request)
        self._write("INSERT OR REPLACE INTO completions (key, model, request, text, prompt_tokens, "
                    "completion_tokens, finish_reason, created, logprobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, model, record, completion.text, completion.prompt_tokens,
                     completion.completion_tokens, completion.finish_reason, time.time(),
                     _logprobs_to_json(completion.logprobs)))

    def _write(self, statement: str, values: tuple) -> None:
        self._write_many(statement, [values])

    def vectors(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The vectors stored for ``keys`` (float32 bytes), those there are; a row whose bytes are not
        its ``dim`` floats, or not all finite, is dropped (its text is embedded again)."""
        found: dict[str, bytes] = {}
        try:
            for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                part = keys[start:start + 500]
                rows = self._db.execute(f"SELECT key, dim, vector FROM vectors WHERE key IN "
                                        f"({','.join('?' * len(part))})", tuple(part)).fetchall()
                for key, dim, blob in rows:
                    if isinstance(blob, bytes) and isinstance(dim, int) and dim > 0 and len(blob) == 4 * dim \
                            and all(math.isfinite(x) for x in memoryview(blob).cast("f")):
                        found[key] = blob
                    else:
                        self._write("DELETE FROM vectors WHERE key = ?", (key,))
        except sqlite3.DatabaseError as exc:
            raise CmalignError(f"{self.path}: cannot read the response cache ({exc}); move it away to start "
                               "a new one") from None
        return found

    def vector_dim(self, model: str) -> int | None:
        """The length of ``model``'s vectors stored here (None: none are)."""
        row = self._db.execute("SELECT dim FROM vectors WHERE model = ? LIMIT 1", (model,)).fetchone()
        return row[0] if row else None

    def put_vectors(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """Store ``(key, float32 bytes)`` rows of ``model``'s vectors, all in one commit."""
        now = time.time()
        self._write_many("INSERT OR REPLACE INTO vectors (key, model, dim, vector, created) VALUES (?, ?, ?, ?, ?)",
                         [(key, model, len(blob) // 4, blob, now) for key, blob in rows])

    def _write_many(self, statement: str, rows: list[tuple]) -> None:
        try:  # a full disk, a read-only file: what was stored before stays
            self._db.executemany(statement, rows)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            try:
                self._db.rollback()
            except sqlite3.DatabaseError:
                pass
            raise CmalignError(f"{self.path}: cannot write the response cache ({exc}); every answer stored "
                               "before is kept in it") from None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def tokens_per_char(self, model: str, at_least: int = 20) -> float | None:
        """Prompt tokens per character of stored request, over ``model``'s answers (None if too few)."""
        n, tokens, chars = self._db.execute(
            "SELECT COUNT(*), SUM(prompt_tokens), SUM(LENGTH(request)) FROM completions WHERE model = ?",
            (model,)).fetchone()
        return tokens / chars if n >= at_least and chars else None

    def close(self) -> None:
        self._db.close()


def _logprobs_to_json(logprobs: tuple[TokenChoice, ...] | None) -> str | None:
    if logprobs is None:
        return None
    return json.dumps([[c.token, c.logprob, [list(a) for a in c.alternatives]] for c in logprobs],
                      ensure_ascii=False, allow_nan=False)


def _logprobs_from_json(text: str | None) -> tuple[TokenChoice, ...] | None:
    """The stored log-probabilities; ValueError or TypeError when the column holds something else."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError("not text")
    return tuple(TokenChoice(token, logprob, tuple((t, lp) for t, lp in alternatives))
                 for token, logprob, alternatives in json.loads(text))


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/cmalign/responses.sqlite`` (``~/.cache`` when that is unset)."""
    return cache_home() / "responses.sqlite"


Store = Callable[[int, Completion], None]
# why a reply cannot be read as the answer its request asks for (None: it can); see ChatBackend.complete
Check = Callable[[ChatRequest, Completion], "str | None"]


def spend(meter) -> None:
    """Count one attempt of ``meter`` (anything with ``max_calls``, ``attempts`` and ``where``: a chat
    backend, an embeddings endpoint); :class:`BudgetExceeded` instead when it would pass ``max_calls``."""
    if meter.max_calls is not None and meter.attempts >= meter.max_calls:
        raise BudgetExceeded(
            f"{meter.where}: the {meter.max_calls} requests {{=max_calls}} allows are spent (retries of "
            "failing requests count: each is billed as one); nothing more was sent, and every answer "
            "received so far is in the cache")
    meter.attempts += 1


class ChatBackend(ABC):
    """Answers chat requests; subclasses implement :meth:`_send` for the requests not cached.

    ``max_calls`` caps the attempts this backend makes, retries included: what a server can bill.
    A subclass that sends over the network calls :meth:`spend` before every attempt; for the others
    each answer is one attempt.
    """

    counts_attempts = False  # True: the subclass calls spend() before each attempt itself

    def __init__(self, *, cache: ResponseCache | None = None, max_calls: int | None = None) -> None:
        if max_calls is not None and not (isinstance(max_calls, int) and max_calls >= 0):
            raise CmalignError(f"{{=max_calls}} {max_calls}: must be a whole number, 0 or more")
        self.cache = cache if cache is not None else ResponseCache()
        self.max_calls = max_calls
        self.attempts = 0  # requests that went out (retries included): what max_calls caps
        self.usage = Usage()
        self.dry_run = False  # answer from the cache only; count the rest in self.plan
        self.plan = Plan()
        self._planned: set[str] = set()
        self.progress = False  # a progress bar per batch of requests sent (the CLI sets it on a terminal)
        self.rejected = 0  # requests the server refused as such (an empty answer each), and its last reason
        self.last_rejection: str | None = None

    @contextmanager
    def dry(self) -> Iterator[Plan]:
        """Within the block nothing is sent: each request the cache cannot answer is counted in the
        plan this yields (a request planned twice counts once) and answered with an empty reply."""
        self.dry_run, self.plan, self._planned = True, Plan(), set()
        try:
            yield self.plan
        finally:
            self.dry_run = False

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Names the model exactly (cache keys and annotator identities use it); never a secret."""

    @property
    def where(self) -> str:
        """The model as a message names it (with its server, where it has one; never a secret)."""
        return self.model_id

    def spend(self) -> None:
        """Count one attempt; :class:`BudgetExceeded` instead when it would pass ``max_calls``."""
        spend(self)

    @abstractmethod
    def _send(self, requests: Sequence[ChatRequest], store: Store) -> None:
        """Answer every request, calling ``store(i, completion)`` for each as soon as it is done.

        Raise :class:`BackendError` when a request cannot be answered; answers already stored are kept.
        """

    def estimate_prompt_tokens(self, requests: Sequence[ChatRequest]) -> int:
        """The prompt tokens ``requests`` would cost. Servers count them; this measures the model's
        earlier requests in the cache (tokens per character), or takes 4 characters a token."""
        per_char = self.cache.tokens_per_char(self.model_id)
        chars = [len(self.cache.record(self.model_id, r)) for r in requests]
        return round(sum(chars) * per_char) if per_char else sum(chars) // 4

    def complete(self, requests: Sequence[ChatRequest], check: Check | None = None) -> list[Completion]:
        """The completion of each request, from the cache where possible (one send per distinct request).

        ``check`` says why a reply cannot be read as the answer its request asks for (an annotator's
        own reading of it): such a reply is a :class:`BackendError` naming the server and the reason,
        and is never cached; a cached one is asked again.
        """
        keys = [r.key(self.model_id) for r in requests]
        distinct = {key: request for key, request in zip(keys, requests)}
        done: dict[str, Completion] = {}
        for key, request in distinct.items():
            hit = self.cache.get(key)
            if hit is not None and check is not None and check(request, hit):
                self.cache.drop(key)  # an answer an older cmalign kept that cannot be read: asked again
                hit = None
            if hit is not None:
                done[key] = hit
        todo = [(key, request) for key, request in distinct.items() if key not in done]
        if self.dry_run:  # a request planned before would be in the cache by now: a hit, not counted again
            new = [(key, request) for key, request in todo if key not in self._planned]
            self._planned.update(key for key, _ in new)
            self.plan.requests += len(new)
            self.plan.prompt_tokens += self.estimate_prompt_tokens([r for _, r in new])
            self.plan.max_completion_tokens += sum(r.max_tokens for _, r in new)
            self.plan.asked += len(requests)
            self.plan.cache_hits += len(requests) - len(new)
            empty = Completion("", 0, 0, finish_reason="dry-run")
            return [done.get(key, empty) for key in keys]
        if todo and self.max_calls is not None and self.attempts + len(todo) > self.max_calls:
            raise BudgetExceeded(
                f"the next step needs {len(todo)} new requests to {self.model_id}, but only "
                f"{self.max_calls - self.attempts} of the {self.max_calls} allowed ({{=max_calls}}) remain; "
                "nothing was sent for it, and every answer received so far is in the cache")

        def store(i: int, completion: Completion) -> None:
            key, request = todo[i]
            if not self.counts_attempts:
                self.spend()
            if completion.rejected:
                self.rejected += 1
                self.last_rejection = completion.finish_reason
            else:
                problem = completion_problem(completion) or (check(request, completion) if check else None)
                if problem:
                    raise BackendError(f"{self.where}: {problem}")
                self.cache.put(key, self.model_id, request, completion)
            done[key] = completion
            self.usage.sent += 1
            self.usage.prompt_tokens += completion.prompt_tokens
            self.usage.completion_tokens += completion.completion_tokens

        if todo:
            with tqdm(total=len(todo), desc=self.model_id, unit="req", disable=not self.progress, leave=False) as bar:
                def store_and_count(i: int, completion: Completion) -> None:
                    store(i, completion)
                    bar.update()

                self._send([request for _, request in todo], store_and_count)
            missing = [key for key, _ in todo if key not in done]
            if missing:
                raise BackendError(f"{self.model_id}: {len(missing)} requests were not answered")
        self.usage.requests += len(requests)
        self.usage.cache_hits += len(requests) - len(todo)
        return [done[key] for key in keys]
