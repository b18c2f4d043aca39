"""Any OpenAI-compatible embeddings endpoint (``/v1/embeddings``) as the sentence encoder:
OpenAI, vLLM, llama.cpp's server, Hugging Face's text-embeddings-inference.

It goes the way the chat backends go: through the official ``openai`` client, each attempt timed
out after ``timeout`` seconds and counted against ``max_calls``; 408/409/429, 5xx, timeouts, dropped
connections and replies a server may get right the next time retried ``max_retries`` times with
backoff (the server's ``Retry-After`` honoured). Every vector received is checked (one per text,
all of one length, finite, not all zeros) and stored at once in the response cache, so a run that
dies keeps what it was sent and a second run asks only for the rest. In a :meth:`OpenAIEmbedder.dry`
block nothing is sent: texts the cache cannot answer are counted and given stand-in vectors.

The identity a bank records is the model with a digest of the endpoint's URL (credentials left out)
and the model's name: vectors from another server or model are another encoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..chunks import batched
from ..errors import CmalignError
from ..vectors import Embedder, unit_rows
from .backend import BackendError, ResponseCache, spend
from .options import BackendOptions
from .openai_api import (NO_KEY, _delay, _Fault, _reason, _retried, _retry_after, _short, check_url, gave_up,
                         mask_key, shown_url)


@dataclass
class EmbeddingPlan:
    """What a dry run would have sent: texts asked for, those the cache holds, requests for the rest."""

    texts: int = 0
    cache_hits: int = 0
    requests: int = 0
    chars: int = 0  # of the texts to send: about four per token

    def summary(self, name: str, max_calls: int | None = None) -> str:
        line = (f"{name}: dry run: {self.texts} texts to embed, {self.cache_hits} from the cache; {self.requests} "
                f"requests would be sent (about {math.ceil(self.chars / 4)} tokens)")
        if max_calls is not None and self.requests > max_calls:
            line += f"; more than {{=max_calls}} {max_calls} allows"
        return line


STAND_IN_DIM = 8  # a dry run's vectors where neither a reply nor the cache has told the length


class OpenAIEmbedder(Embedder):
    """Vectors for ``model`` from the embeddings endpoint at ``base_url``.

    Examples
    --------
    A dry run sends nothing: it counts the requests and reads a stand-in unit vector per text.

    >>> from cmalign.chat.backend import ResponseCache
    >>> embedder = OpenAIEmbedder("nomic-embed", base_url="http://127.0.0.1:8080/v1", cache=ResponseCache(":memory:"))
    >>> with embedder.dry() as plan:
    ...     vectors = embedder.embed(["where is my card", "card lost"], 64)
    >>> vectors.shape, plan.texts, plan.requests
    ((2, 8), 2, 1)

    Outside a dry run, ``embed`` asks the endpoint for the vectors the cache lacks, a batch a
    request, and checks each (one per text, one length, finite, not all zeros) before it is kept.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 5, cache: ResponseCache | None = None,
                 max_calls: int | None = None) -> None:
        if max_calls is not None and not (isinstance(max_calls, int) and max_calls >= 0):
            raise CmalignError(f"{{=max_calls}} {max_calls}: must be a whole number, 0 or more")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise CmalignError(f"{{=timeout}} {timeout}: must be a finite number of seconds above 0")
        self.model = model
        named = "{=base_url}" if base_url else "$OPENAI_BASE_URL" if os.environ.get("OPENAI_BASE_URL") else None
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.shown_url = shown_url(self.base_url)
        check_url(self.base_url, named or "the base URL")
        self.timeout, self.max_retries, self.max_calls = timeout, max_retries, max_calls
        self.cache = cache if cache is not None else ResponseCache()
        self.attempts = 0  # requests that went out, retries included: what max_calls caps
        self.sent = 0      # texts embedded by the server (not from the cache)
        self.dry_run = False
        self.plan = EmbeddingPlan()
        self._dim: int | None = None
        self._api_key = os.environ.get(api_key_env) or NO_KEY
        if self._api_key == NO_KEY and "api.openai.com" in self.base_url:
            raise BackendError(f"{self.where} needs an API key: set ${api_key_env}")
        self._client = None

    @classmethod
    def from_options(cls, model: str, options=None) -> OpenAIEmbedder:
        """Reached, cached and paid for as ``options`` (:class:`~cmalign.chat.options.BackendOptions`)
        says for the chat backends: the same base URL, key, timeout, retries, cache file and ``max_calls``."""
        o = options if options is not None else BackendOptions()
        return cls(model, base_url=o.base_url, api_key_env=o.api_key_env, timeout=o.timeout, max_retries=o.retries,
                   cache=o.open_cache(), max_calls=o.max_calls)

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.shown_url!r})"

    @property
    def identity(self) -> str:
        digest = hashlib.sha256(f"{self.shown_url.rstrip('/')}\n{self.model}".encode()).hexdigest()
        return f"openai-embed:{self.model}@{digest[:12]}"

    @property
    def where(self) -> str:
        return f"openai-embed:{self.model} at {self.shown_url}"

    @property
    def dim(self) -> int:
        """The vectors' length: known from the vectors received or cached (asked for once if neither;
        in a dry run, the stand-ins' length)."""
        if self._dim is None:
            self._dim = self.cache.vector_dim(self.identity)
        if self._dim is None:
            if self.dry_run:
                return STAND_IN_DIM
            self.embed(["dimension"], 1)
        return self._dim

    @contextmanager
    def dry(self) -> Iterator[EmbeddingPlan]:
        """Within the block nothing is sent: texts the cache cannot answer are counted in the plan this
        yields and given stand-in vectors (derived from the text), so that what reads them can go on."""
        if self.dry_run:  # within a dry run already (a job's load, then its plan): one plan for both
            yield self.plan
            return
        self.dry_run, self.plan = True, EmbeddingPlan()
        try:
            yield self.plan
        finally:
            self.dry_run = False

    def _key(self, text: str) -> str:
        return hashlib.sha256(json.dumps([self.identity, text], ensure_ascii=False).encode()).hexdigest()

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found = self.cache.vectors(keys)
        vectors: dict[str, np.ndarray] = {k: np.frombuffer(b, dtype="<f4") for k, b in found.items()}
        if vectors and self._dim is None:
            self._dim = len(next(iter(vectors.values())))
        missing = [i for i, k in enumerate(keys) if k not in vectors]
        if self.dry_run:
            self.plan.texts += len(texts)
            self.plan.cache_hits += len(texts) - len(missing)
            self.plan.requests += math.ceil(len(missing) / max(1, batch_size))
            self.plan.chars += sum(len(texts[i]) for i in missing)
            for i in missing:
                vectors[keys[i]] = _stand_in(texts[i], self.dim)
        else:
            for part in batched(missing, max(1, batch_size)):
                got = self._request([texts[i] for i in part])
                self.cache.put_vectors(self.identity, [(keys[i], v.astype("<f4").tobytes()) for i, v in zip(part, got)])
                self.sent += len(part)
                vectors.update((keys[i], v) for i, v in zip(part, got))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = [vectors[k] for k in keys]
        if len({len(r) for r in rows}) > 1:
            raise BackendError(f"{self.where}: vectors of different lengths ({sorted({len(r) for r in rows})}); "
                               "the response cache holds vectors of another model under this name")
        return unit_rows(np.stack(rows), self.where)

    def _request(self, texts: list[str]) -> list[np.ndarray]:
        """One batch's vectors, with retries; each attempt is counted against ``max_calls``."""
        faults: list[_Fault] = []
        while True:
            spend(self)
            try:
                return self._attempt(texts, len(faults))
            except _Fault as fault:
                faults.append(fault)
                if len(faults) > self.max_retries:
                    raise gave_up(self, faults) from None
                time.sleep(_delay(len(faults) - 1, fault.after))

    def _attempt(self, texts: list[str], retries_taken: int) -> list[np.ndarray]:
        import openai

        if self._client is None:  # the client sends each attempt once: the retries are this class's
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout,
                                         max_retries=0)
        try:
            raw = self._client.embeddings.with_raw_response.create(
                model=self.model, input=texts, encoding_format="float",
                extra_headers={"x-stainless-retry-count": str(retries_taken)})
            body = raw.http_response.content
        except openai.APIStatusError as exc:
            reason = mask_key(_reason(exc), self._api_key)
            if _retried(exc.response):
                raise _Fault(f"HTTP {exc.status_code}: {reason}", _retry_after(exc.response.headers)) from None
            raise BackendError(f"{self.where}: HTTP {exc.status_code}: {reason}") from None
        except openai.APITimeoutError:
            raise _Fault("timeout") from None
        except openai.APIConnectionError as exc:
            raise _Fault(f"connection failed ({_short(str(exc.__cause__ or exc))})") from None
        except openai.OpenAIError as exc:
            raise BackendError(f"{self.where}: {mask_key(_short(str(exc)), self._api_key)}") from None
        return self._read(body, len(texts))

    def _read(self, body: bytes, n: int) -> list[np.ndarray]:
        """The ``n`` vectors of a reply, in the order of the texts sent; :class:`_Fault` for a reply
        that is no list of ``n`` finite vectors of one length (a server may get it right next time)."""
        try:
            reply = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _Fault(f"the reply is not JSON ({_short(body.decode('utf-8', errors='replace'), 80)!r})") from None
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else "no"
            raise _Fault(f"the reply has {got} vectors for the {n} texts sent")
        try:
            order = sorted(range(n), key=lambda j: data[j].get("index", j))
            vectors = [np.asarray(data[j]["embedding"], dtype=np.float32) for j in order]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise _Fault("the reply's vectors are malformed") from None
        dims = {v.shape for v in vectors}
        if len(dims) != 1 or len(next(iter(dims))) != 1 or not vectors[0].size:
            raise _Fault(f"the reply's vectors are not all one length ({sorted(v.size for v in vectors)[:3]}...)")
        dim = vectors[0].size
        if self._dim is not None and dim != self._dim:
            raise BackendError(f"{self.where}: vectors of {dim} numbers after vectors of {self._dim}")
        for v in vectors:
            if not np.all(np.isfinite(v)) or not np.any(v):
                raise _Fault("the reply has a vector that is not finite or is all zeros")
        self._dim = dim
        return vectors


def _stand_in(text: str, dim: int) -> np.ndarray:
    """A unit vector derived from ``text`` alone: what a dry run reads where a vector would come."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
