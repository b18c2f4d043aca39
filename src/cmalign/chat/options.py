"""How a backend is reached and paid for: the settings every chat and embeddings backend shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CmalignError
from .backend import ResponseCache, default_cache_path


@dataclass(frozen=True)
class BackendOptions:
    """How to reach and pay for a chat backend."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    cache: str | None = None          # a file; "none" for an in-memory cache; None for the default
    max_calls: int | None = None
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 5
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
