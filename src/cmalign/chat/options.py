"""How a backend is reached and paid for: the settings every chat and embeddings backend shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CmalignError
from ..settings import setting
from .backend import ResponseCache, default_cache_path


@dataclass(frozen=True)
class BackendOptions:
    """How to reach and pay for a chat backend."""

    base_url: str | None = setting(None, "OpenAI-compatible server (default: $OPENAI_BASE_URL, else OpenAI)")
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the API key")
    cache: str | None = setting(None, "response cache FILE (default: $XDG_CACHE_HOME/cmalign/responses.sqlite; "
                                "'none': none)")
    max_calls: int | None = setting(None, "send at most N requests in this run, retries included (cache hits are "
                                    "free)", type=int)
    concurrency: int = setting(8, "requests in flight at once")
    timeout: float = setting(60.0, "seconds per attempt")
    retries: int = setting(5, "retries per request")
    batch_size: int = 8               # local models: generation batch
    device: str = "cpu"               # local models: "cpu", "cuda", "cuda:1", "mps"

    def __post_init__(self) -> None:
        for name, value, low in (("max_calls", self.max_calls, 0), ("concurrency", self.concurrency, 1),
                                 ("retries", self.retries, 0)):
            if value is not None and value < low:
                raise CmalignError(f"{{={name}}} {value} is below {low}")
        if self.base_url is not None:  # a URL no client can reach fails before any file is read
            from .openai_api import check_url

            check_url(self.base_url, "{=base_url}")
        if not self.timeout > 0:
            raise CmalignError(f"{{=timeout}} {self.timeout:g} must be above 0")

    def open_cache(self) -> ResponseCache:
        if self.cache == "none":
            return ResponseCache()
        return ResponseCache(Path(self.cache) if self.cache else default_cache_path())
