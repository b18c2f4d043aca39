"""Any OpenAI-compatible chat completions server: OpenAI itself, vLLM, Ollama, llama.cpp, a gateway.

Requests go out concurrently (at most ``concurrency`` at a time) through the official ``openai``
client, which times each attempt out after ``timeout`` seconds and retries 408/409/429, 5xx,
timeouts and dropped connections with exponential backoff, honouring the server's
``Retry-After``. When the retries run out the run stops with a :class:`BackendError` naming the
cause; every answer that arrived before is already in the response cache.

The API key is read from an environment variable when the backend is built and handed to the
client only; it is never part of a cache key, an identity, a message or a log line.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence

from .backend import BackendError, ChatBackend, ChatRequest, Completion, ResponseCache, Store, TokenChoice

NO_KEY = "no-key"  # servers that check no key still need the header to be non-empty
_KEYLIKE = re.compile(r"\b(?:sk|key)-[\w*.\-]{4,}")


class NoLogprobs(BackendError):
    """The server gives no token log-probabilities (it does not support them, or has them off)."""


class OpenAIChatBackend(ChatBackend):
    """Chat completions from ``base_url`` for ``model``.

    >>> backend = OpenAIChatBackend("gpt-4o-mini", base_url="https://api.openai.com/v1")  # doctest: +SKIP
    >>> backend.complete([ChatRequest.of([{"role": "user", "content": "Say hi"}])])[0].text  # doctest: +SKIP
    'Hi!'
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 5,
                 cache: ResponseCache | None = None, max_calls: int | None = None) -> None:
        super().__init__(cache=cache, max_calls=max_calls)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.shown_url = shown_url(self.base_url)  # what messages say: no credentials
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = os.environ.get(api_key_env) or NO_KEY
        if self._api_key == NO_KEY and "api.openai.com" in self.base_url:
            raise BackendError(f"{self.model_id} at {self.shown_url} needs an API key: set ${api_key_env}")

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks
        return f"OpenAIChatBackend(model={self.model!r}, base_url={self.shown_url!r})"

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"

    def no_logprobs(self, why: str) -> NoLogprobs:
        return NoLogprobs(f"{self.model_id} at {self.shown_url} gives no token log-probabilities ({why}), so it "
                          f"cannot score labels: start the server with them on, or use --annotator "
                          f"openai:{self.model} (labels from the model's answers, no scores)")

    def _send(self, requests: Sequence[ChatRequest], store: Store) -> None:
        asyncio.run(self._send_all(requests, store))

    async def _send_all(self, requests: Sequence[ChatRequest], store: Store) -> None:
        import openai

        gate = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout,
                                      max_retries=self.max_retries) as client:

            def reason(exc) -> str:  # servers echo a wrong key back, part-masked: mask it all
                return mask_key(_reason(exc), self._api_key)

            async def one(i: int, request: ChatRequest) -> None:
                scored = {"logprobs": True, "top_logprobs": request.top_logprobs} if request.top_logprobs else {}
                async with gate:
                    try:
                        reply = await client.chat.completions.create(
                            model=self.model, messages=request.message_dicts(), max_tokens=request.max_tokens,
                            temperature=request.temperature, top_p=request.top_p, seed=request.seed, **scored)
                    except openai.APIStatusError as exc:
                        if scored and "logprob" in reason(exc).lower():  # refused for what it was asked
                            raise self.no_logprobs(f"HTTP {exc.status_code}: {reason(exc)}") from None
                        if not isinstance(exc, openai.BadRequestError):
                            retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500
                            after = f" after {self.max_retries} retries" if retried else ""
                            raise BackendError(f"{self.model_id} at {self.shown_url}: HTTP {exc.status_code}"
                                               f"{after}: {reason(exc)}") from None
                        # this one request is refused (too long for the context, say): an empty
                        # answer for this item, kept out of the cache; the run goes on
                        store(i, Completion("", 0, 0, finish_reason=f"rejected: {reason(exc)}"))
                        return
                    except openai.APITimeoutError:
                        raise BackendError(f"{self.model_id} at {self.shown_url}: no answer within "
                                           f"{self.timeout:g} s, {self.max_retries + 1} times") from None
                    except openai.APIConnectionError as exc:
                        raise BackendError(f"{self.model_id} at {self.shown_url}: connection failed "
                                           f"after {self.max_retries} retries ({_short(str(exc.__cause__ or exc))})"
                                           ) from None
                    except openai.OpenAIError as exc:
                        raise BackendError(f"{self.model_id} at {self.shown_url}: {mask_key(_short(str(exc)), self._api_key)}"
                                           ) from None
                completion = _completion(reply, scored=bool(scored))
                if scored and completion.logprobs is None and completion.text:
                    raise self.no_logprobs("the reply had none")
                store(i, completion)

            try:
                async with asyncio.TaskGroup() as group:
                    for i, request in enumerate(requests):
                        group.create_task(one(i, request))
            except ExceptionGroup as group_error:  # the first failure cancels the rest; report it
                raise group_error.exceptions[0] from None


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


def _completion(reply, *, scored: bool = False) -> Completion:
    """Read one chat completion; a reply with no choices or no text is an empty answer, not a crash.
    With ``scored``, each reply token's log-probability and alternatives, where the server gave them."""
    text, finish, logprobs = "", "empty", None
    if reply.choices:
        choice = reply.choices[0]
        text = (choice.message.content if choice.message is not None else None) or ""
        finish = choice.finish_reason or "stop"
        content = getattr(choice.logprobs, "content", None) if scored else None
        if content:
            logprobs = tuple(TokenChoice(t.token, float(t.logprob),
                                         tuple((a.token, float(a.logprob)) for a in (t.top_logprobs or ())))
                             for t in content)
    usage = reply.usage
    return Completion(text=text, finish_reason=finish, logprobs=logprobs,
                      prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(usage, "completion_tokens", 0) or 0)


def _reason(exc) -> str:
    """What the server said was wrong: its error message, not the client's wrapping of it."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    return _short(message or exc.message)


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[:limit] + "..."
