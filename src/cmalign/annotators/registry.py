"""Annotators by name, as the command line spells them.

- ``embedded``: the bundled sentence-embedding model (scores, no LLM, no network);
- ``hf-score:PATH``: a local causal LM scoring every label (scores; never out of the set);
- ``hf:PATH``: a local causal LM generating answers through its chat template;
- ``openai:MODEL``: any OpenAI-compatible chat server (``--base-url``).

The last two are chat backends: they answer through a prompting strategy (``strategies.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CmalignError
from .base import Annotator
from .chat import ChatBackend, ResponseCache, default_cache_path
from .embedding import EmbeddingAnnotator, SentenceEncoder

SPECS = ("embedded (the default), hf-score:PATH (a local causal LM folder or .gguf file scoring each label), "
         "hf:PATH (the same model generating its answer), openai:MODEL (an OpenAI-compatible server, --base-url)")
CHAT_KINDS = ("hf", "openai")


@dataclass(frozen=True)
class BackendOptions:
    """How to reach and pay for a chat backend (command-line options)."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    cache: str | None = None          # a file; "none" for an in-memory cache; None for the default
    max_calls: int | None = None
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 5
    batch_size: int = 8               # local models: generation batch
    device: str = "cpu"               # local models: "cpu", "cuda", "cuda:1", "mps"

    def open_cache(self) -> ResponseCache:
        if self.cache == "none":
            return ResponseCache()
        return ResponseCache(Path(self.cache) if self.cache else default_cache_path())


def _parse(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.partition(":")
    if (kind == "embedded" and not arg) or (kind in ("hf-score", *CHAT_KINDS) and arg):
        return kind, arg
    raise CmalignError(f"unknown annotator {spec!r}; expected one of: {SPECS}")


def is_chat(spec: str) -> bool:
    """Whether ``spec`` names a chat backend (answers through a prompting strategy)."""
    return _parse(spec)[0] in CHAT_KINDS


def make_annotator(spec: str, encoder: SentenceEncoder, options: BackendOptions = BackendOptions()) -> Annotator:
    """Build a scoring annotator (``embedded`` or ``hf-score:PATH``); ``encoder`` is the shared embedding model."""
    kind, arg = _parse(spec)
    if kind == "embedded":
        return EmbeddingAnnotator(encoder)
    if kind == "hf-score":
        from .hf import HFLabelScorer  # imports torch/transformers: only when asked for

        return HFLabelScorer(arg, device=options.device)
    raise CmalignError(f"{spec!r} is a chat model: it answers through a strategy (--strategy)")


def make_backend(spec: str, options: BackendOptions = BackendOptions()) -> ChatBackend:
    """Build the chat backend ``hf:PATH`` or ``openai:MODEL`` names."""
    kind, arg = _parse(spec)
    if kind == "openai":
        from .openai_api import OpenAIChatBackend

        return OpenAIChatBackend(arg, base_url=options.base_url, api_key_env=options.api_key_env,
                                 concurrency=options.concurrency, timeout=options.timeout,
                                 max_retries=options.retries, cache=options.open_cache(),
                                 max_calls=options.max_calls)
    if kind == "hf":
        from .hf import HFChatBackend

        return HFChatBackend(arg, batch_size=options.batch_size, device=options.device,
                             cache=options.open_cache(), max_calls=options.max_calls)
    raise CmalignError(f"{spec!r} is not a chat model; chat models: hf:PATH, openai:MODEL")
