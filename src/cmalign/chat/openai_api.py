"""Any OpenAI-compatible chat completions server: OpenAI itself, vLLM, Ollama, llama.cpp, a gateway.

Requests go out concurrently (at most ``concurrency`` at a time) through the official ``openai``
client. Each attempt is timed out after ``timeout`` seconds. 408/409/429, 5xx, timeouts, dropped
connections and replies a server may get right the next time (no choices, no content, a body that
is not JSON) are retried, ``max_retries`` times, with exponential backoff, honouring the server's
``Retry-After``. Every attempt counts against ``max_calls``: it caps what the server can bill.

A reply is checked before it is used or cached: one larger than ``max_reply_bytes``, or with
log-probabilities that are no probabilities (NaN, infinite, above 0), is a :class:`BackendError`
naming the server and what was wrong, as is a reply still unusable when the retries run out;
every answer that arrived before is already in the response cache, and nothing invalid is.

The API key is read from an environment variable when the backend is built and handed to the
client only; it is never part of a cache key, an identity, a message or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import re
import time
import urllib.parse
from collections.abc import Sequence

from ..errors import CmalignError
from .backend import (BackendError, ChatBackend, ChatRequest, Completion, ResponseCache, Store, TokenChoice,
                      logprob_problem)

NO_KEY = "no-key"  # servers that check no key still need the header to be non-empty
_KEYLIKE = re.compile(r"\b(?:sk|key)-[\w*.\-]{4,}")
MAX_REPLY_BYTES = 1 << 20  # a reply of at most 64 tokens, 20 alternatives each, is far smaller
IMPOSSIBLE = -9999.0  # the log-probability OpenAI and vLLM report for a token that cannot follow
_RETRIED_STATUS = (408, 409, 429)
_FIRST_DELAY, _MOST_DELAY, _MOST_RETRY_AFTER = 0.5, 8.0, 60.0  # seconds, as the openai client waits


class NoLogprobs(BackendError):
    """The server gives no token log-probabilities (it does not support them, or has them off)."""


class _Fault(Exception):
    """One attempt failed in a way the server may not repeat: retried. ``reason`` says how, ``after``
    is how long the server asks to wait (None: back off)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.after = reason, after


class _Broken(Exception):
    """The reply is no answer, and asking again would not make it one: an error of the request."""


class OpenAIChatBackend(ChatBackend):
    """Chat completions from ``base_url`` for ``model``.

    Examples
    --------
    A local server needs no key; a password in its URL is never shown. In a dry run nothing is
    sent: the requests the cache cannot answer are counted instead.

    >>> from cmalign.chat.backend import ResponseCache
    >>> backend = OpenAIChatBackend("qwen", base_url="http://me:secret@127.0.0.1:8080/v1", cache=ResponseCache(":memory:"))
    >>> backend
    OpenAIChatBackend(model='qwen', base_url='http://***@127.0.0.1:8080/v1')
    >>> with backend.dry() as plan:
    ...     replies = backend.complete([ChatRequest.of([{"role": "user", "content": "Say hi"}])])
    >>> plan.requests, replies[0].finish_reason
    (1, 'dry-run')

    Outside a dry run, ``backend.complete(requests)`` sends them, ``concurrency`` at a time, and
    returns each reply (``.text``), cached as it arrives.
    """

    counts_attempts = True

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 5,
                 cache: ResponseCache | None = None, max_calls: int | None = None,
                 max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        super().__init__(cache=cache, max_calls=max_calls)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise CmalignError(f"{{=timeout}} {timeout}: must be a finite number of seconds above 0")
        if not (isinstance(max_reply_bytes, int) and max_reply_bytes > 0):
            raise CmalignError(f"{{=max_reply_bytes}} {max_reply_bytes}: must be a whole number of bytes above 0")
        self.model = model
        named = "{=base_url}" if base_url else "$OPENAI_BASE_URL" if os.environ.get("OPENAI_BASE_URL") else None
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.shown_url = shown_url(self.base_url)  # what messages say: no credentials
        check_url(self.base_url, named or "the base URL")
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_reply_bytes = max_reply_bytes
        self._api_key = os.environ.get(api_key_env) or NO_KEY
        self._api_key_env = api_key_env

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks
        return f"OpenAIChatBackend(model={self.model!r}, base_url={self.shown_url!r})"

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"

    @property
    def where(self) -> str:
        return f"{self.model_id} at {self.shown_url}"

    def no_logprobs(self, why: str) -> NoLogprobs:
        return NoLogprobs(f"{self.where} gives no token log-probabilities ({why}), so it "
                          f"cannot score labels: start the server with them on, or use {{=annotator}} "
                          f"openai:{self.model} (labels from the model's answers, no scores)")

    def _send(self, requests: Sequence[ChatRequest], store: Store) -> None:
        # asked only when something is sent: a dry run, or a run the cache answers, needs no key
        if self._api_key == NO_KEY and "api.openai.com" in self.base_url:
            raise BackendError(f"{self.where} needs an API key: set ${self._api_key_env}")
        asyncio.run(self._send_all(requests, store))

    async def _send_all(self, requests: Sequence[ChatRequest], store: Store) -> None:
        import openai

        gate = asyncio.Semaphore(self.concurrency)
        failed: list[CmalignError] = []  # the first failure stops new attempts; those in flight land
        # the client sends each attempt once: the retries are this backend's, so that each is counted
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout,
                                      max_retries=0) as client:

            def reason(exc) -> str:  # servers echo a wrong key back, part-masked: mask it all
                return mask_key(_reason(exc), self._api_key)

            async def attempt(request: ChatRequest, scored: dict, retries_taken: int) -> Completion:
                """One HTTP request and its reply, read and checked."""
                try:
                    async with asyncio.timeout(self.timeout):  # the whole attempt, however the bytes trickle
                        async with client.chat.completions.with_streaming_response.create(
                                model=self.model, messages=request.message_dicts(), max_tokens=request.max_tokens,
                                temperature=request.temperature, top_p=request.top_p, seed=request.seed,
                                extra_headers={"x-stainless-retry-count": str(retries_taken)},
                                **scored) as response:
                            body = await self._read(response)
                            content_type = response.headers.get("content-type", "")
                except openai.APIStatusError as exc:
                    if scored and "logprob" in reason(exc).lower():  # refused for what it was asked
                        raise self.no_logprobs(f"HTTP {exc.status_code}: {reason(exc)}") from None
                    if isinstance(exc, openai.BadRequestError):
                        # this one request is refused (too long for the context, say): an empty
                        # answer for this item, kept out of the cache; the run goes on
                        return Completion("", 0, 0, finish_reason=f"rejected: {reason(exc)}")
                    if _retried(exc.response):
                        raise _Fault(f"HTTP {exc.status_code}: {reason(exc)}",
                                     _retry_after(exc.response.headers)) from None
                    raise BackendError(f"{self.where}: HTTP {exc.status_code}: {reason(exc)}") from None
                except (openai.APITimeoutError, TimeoutError):
                    raise _Fault("timeout") from None
                except openai.APIConnectionError as exc:
                    raise _Fault(f"connection failed ({_short(str(exc.__cause__ or exc))})") from None
                except openai.OpenAIError as exc:
                    raise BackendError(f"{self.where}: {mask_key(_short(str(exc)), self._api_key)}") from None
                except _Broken as exc:
                    raise BackendError(f"{self.where}: {exc}") from None
                except (CmalignError, _Fault):
                    raise
                except Exception as exc:  # noqa: BLE001 - the body's bytes stopped coming: a dropped connection
                    if "timeout" in type(exc).__name__.lower():
                        raise _Fault("timeout") from None
                    raise _Fault(f"connection failed while reading the reply ({_short(str(exc) or type(exc).__name__)})"
                                 ) from None
                try:
                    return _completion(body, content_type, scored=bool(scored))
                except _Broken as exc:
                    raise BackendError(f"{self.where}: {mask_key(str(exc), self._api_key)}") from None

            async def one(i: int, request: ChatRequest) -> None:
                scored = {"logprobs": True, "top_logprobs": request.top_logprobs} if request.top_logprobs else {}
                async with gate:
                    try:
                        faults: list[_Fault] = []
                        while True:
                            if failed:
                                return
                            self.spend()
                            try:
                                completion = await attempt(request, scored, len(faults))
                                break
                            except _Fault as fault:
                                faults.append(fault)
                                if len(faults) > self.max_retries:
                                    raise self._gave_up(faults) from None
                                await asyncio.sleep(_delay(len(faults) - 1, fault.after))
                        if scored and completion.logprobs is None and completion.text:
                            raise self.no_logprobs("the reply had none")
                        store(i, completion)
                    except CmalignError as exc:
                        failed.append(exc)

            try:
                async with asyncio.TaskGroup() as group:
                    for i, request in enumerate(requests):
                        group.create_task(one(i, request))
            except ExceptionGroup as group_error:  # not an error of a request (those are in failed): a bug
                raise group_error.exceptions[0] from None
        if failed:
            raise failed[0]

    async def _read(self, response) -> bytes:
        """The reply's body, refused past ``max_reply_bytes`` without reading the rest."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_reply_bytes:
            raise _Broken(self._oversize(int(declared)))
        chunks, size = [], 0
        async for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_reply_bytes:
                raise _Broken(self._oversize(size, at_least=True))
            chunks.append(chunk)
        return b"".join(chunks)

    def _oversize(self, size: int, at_least: bool = False) -> str:
        return (f"a reply of {'more than ' if at_least else ''}{size:,} bytes, past the {self.max_reply_bytes:,} "
                "that {=max_reply_bytes} allows: not an answer to a short chat request, and not kept")

    def _gave_up(self, faults: list[_Fault]) -> BackendError:
        return gave_up(self, faults)


def gave_up(client, faults: list[_Fault]) -> BackendError:
    """The error once ``client``'s retries are spent, in the words of the last fault."""
    last = faults[-1].reason
    if last == "timeout":
        return BackendError(f"{client.where}: no answer within {client.timeout:g} s, {len(faults)} times")
    return BackendError(f"{client.where}: {mask_key(_after(last, client.max_retries), client._api_key)}")


def _after(reason: str, retries: int) -> str:
    """``reason`` with "after N retries" where it reads: "HTTP 500 after 2 retries: injected 500"."""
    head, colon, tail = reason.partition(": ")
    if reason.startswith("HTTP ") and colon:
        return f"{head} after {retries} retries: {tail}"
    head, paren, tail = reason.partition(" (")
    return f"{head} after {retries} retries{paren}{tail}" if paren else f"{reason} after {retries} retries"


def _retried(response) -> bool:
    """Whether a status error is worth retrying: as the openai client judges it."""
    told = response.headers.get("x-should-retry")
    if told in ("true", "false"):
        return told == "true"
    return response.status_code in _RETRIED_STATUS or response.status_code >= 500


def _retry_after(headers) -> float | None:
    """How long the server asks to wait (Retry-After, in seconds or as a date; retry-after-ms)."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            pass
    try:
        parsed = email.utils.parsedate_tz(headers.get("retry-after") or "")
        return None if parsed is None else email.utils.mktime_tz(parsed) - time.time()
    except (TypeError, ValueError, OverflowError):
        return None


def _delay(retries_taken: int, after: float | None) -> float:
    """Seconds before the next attempt: the server's word within a minute, else exponential backoff."""
    if after is not None and math.isfinite(after) and 0 < after <= _MOST_RETRY_AFTER:
        return after
    return min(_FIRST_DELAY * 2.0 ** min(retries_taken, 100), _MOST_DELAY) * (1 - 0.25 * random.random())


def check_url(url: str, named: str) -> None:
    """A base URL a client can send to: http or https, a host, a port in range (one line if not)."""
    shown = shown_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as exc:
        raise CmalignError(f"{named} {shown!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CmalignError(f"{named} {shown!r}: not an http:// or https:// URL with a host")


def shown_url(url: str) -> str:
    """``url`` as a message may show it: a ``user:password@`` in it becomes ``***@``."""
    return re.sub(r"(?<=://)[^/@]*@", "***@", url)


def mask_key(text: str, key: str) -> str:
    """``text`` with anything that could be part of the API key ``key`` masked whole: the key, a
    word sharing four characters in a row with it, a word a server part-masked (``abc****xyz``),
    and anything shaped like a key."""
    def masked(word: str) -> bool:
        if re.search(r"\*{3,}", word):
            return True
        return key != NO_KEY and any(key[i:i + 4] in word for i in range(len(key) - 3))

    text = _KEYLIKE.sub("[key]", text.replace(key, "[key]") if key != NO_KEY else text)
    return re.sub(r"[^\s'\"`,;()]+", lambda m: "[key]" if masked(m.group()) else m.group(), text)


def _completion(body: bytes, content_type: str, *, scored: bool = False) -> Completion:
    """Read one chat completion's body, checked: :class:`_Fault` for a reply a server may get right
    the next time (not JSON, no choices, no content), :class:`_Broken` for one it would not (its
    log-probabilities are no probabilities). With ``scored``, each reply token's log-probability
    and alternatives, where the server gave them."""
    kind = content_type.split(";")[0].strip().lower()
    try:  # a chat completion is taken whatever its Content-Type says; an HTML page never parses
        reply = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        shown = f"{kind}: " if kind and "json" not in kind else ""
        raise _Fault(f"the reply is not JSON ({shown}{_short(_text(body), 80)!r})") from None
    if not isinstance(reply, dict):
        raise _Fault(f"the reply is not a chat completion ({_short(_text(body), 80)!r})")
    if "error" in reply and "choices" not in reply:  # a gateway's error, sent as a success
        raise _Fault(f"the reply is an error: {_short(_message(reply) or _text(body))}")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Fault("the reply has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise _Fault("the reply has no message")
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) and finish else "stop"
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:  # the model declines: like a refused request, not kept
        return Completion("", 0, 0, finish_reason=f"rejected: {_short(refusal)}")
    text = message.get("content")
    if text is None:
        if finish == "content_filter":
            return Completion("", 0, 0, finish_reason="rejected: the server's content filter withheld the answer")
        raise _Fault("the reply has no content (null)")
    if not isinstance(text, str):
        raise _Fault(f"the reply's content is a {type(text).__name__}, not text")
    logprobs = _logprobs(choice.get("logprobs")) if scored else None
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    return Completion(text=text, finish_reason=finish, logprobs=logprobs,
                      prompt_tokens=_count(usage.get("prompt_tokens")),
                      completion_tokens=_count(usage.get("completion_tokens")))


def _logprobs(given) -> tuple[TokenChoice, ...] | None:
    """The reply tokens' log-probabilities, checked (None: the server gave none)."""
    content = given.get("content") if isinstance(given, dict) else None
    if not content:
        return None
    if not isinstance(content, list):
        raise _Broken("the reply's log-probabilities are malformed")
    choices = []
    for item in content:
        if not isinstance(item, dict) or not isinstance(item.get("token"), str):
            raise _Broken("the reply's log-probabilities are malformed")
        alternatives = item.get("top_logprobs") or []
        if not isinstance(alternatives, list) or not all(
                isinstance(a, dict) and isinstance(a.get("token"), str) for a in alternatives):
            raise _Broken("the reply's log-probabilities are malformed")
        choices.append(TokenChoice(item["token"], _logprob(item["token"], item.get("logprob")),
                                   tuple((a["token"], _logprob(a["token"], a.get("logprob"))) for a in alternatives)))
    return tuple(choices)


def _logprob(token: str, value) -> float:
    if value == -math.inf:  # a token that cannot follow: as OpenAI and vLLM write it
        return IMPOSSIBLE
    problem = logprob_problem(value)
    if problem:
        raise _Broken(f"the reply gives the token {token!r} {problem}")
    return float(value)


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _message(body) -> str | None:
    """The message in an error body: ``{"error": {"message": ...}}``, ``{"error": ...}``, ``{"detail": ...}``."""
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail")
    if not isinstance(error, str) and isinstance(body.get("detail"), str):
        error = body["detail"]
    return error if isinstance(error, str) and error.strip() else None


def _reason(exc) -> str:
    """What the server said was wrong: its error message, not the client's wrapping of it; a body
    that is plain text (or an HTML page) is its own message."""
    body = exc.body
    message = _message(body)
    if message is None and isinstance(body, str) and body.strip():
        message = re.sub(r"<(script|style)\b.*?</\1>|<[^>]*>", " ", body, flags=re.IGNORECASE | re.DOTALL)
    return _short(message or exc.message)


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[:limit] + "..."
