"""Annotators by name, as the command line spells them.

- ``embedded``: the bundled sentence-embedding model (scores, no LLM, no network);
- ``hf-score:PATH``: a local causal LM scoring every label (scores; never out of the set);
- ``hf:PATH``: a local causal LM generating answers through its chat template;
- ``openai:MODEL``: any OpenAI-compatible chat server (``base_url``);
- ``openai-score:MODEL``: the same server scoring every label from its token log-probabilities.

``hf:`` and ``openai:`` are chat backends: they answer through a prompting strategy (``prompting/``).
``openai-score:`` sends its own requests through the same backend (cache, budget, dry run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..chat.backend import ChatBackend
from ..chat.options import BackendOptions
from ..encoder import SentenceEncoder
from ..errors import CmalignError
from .base import Annotator
from .embedding import EmbeddingAnnotator

if TYPE_CHECKING:
    from ..prompting import Decoding, Prompts

SPECS = ("embedded (the default), hf-score:PATH (a local causal LM folder or .gguf file scoring each label), "
         "hf:PATH (the same model generating its answer), openai:MODEL (an OpenAI-compatible server at a base URL), "
         "openai-score:MODEL (the same server scoring each label from its log-probabilities)")
CHAT_KINDS = ("hf", "openai")
BACKEND_KINDS = (*CHAT_KINDS, "openai-score")  # annotators that send requests through a chat backend


def _parse(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.partition(":")
    if (kind == "embedded" and not arg) or (kind in ("hf-score", *BACKEND_KINDS) and arg):
        return kind, arg
    raise CmalignError(f"unknown annotator {spec!r}; expected one of: {SPECS}")


def is_backend(spec: str) -> bool:
    """Whether ``spec`` names an annotator that sends its requests through a chat backend."""
    return _parse(spec)[0] in BACKEND_KINDS


def is_chat(spec: str) -> bool:
    """Whether ``spec`` names a chat backend (answers through a prompting strategy)."""
    return _parse(spec)[0] in CHAT_KINDS


def make_annotator(spec: str, encoder: SentenceEncoder, options: BackendOptions = BackendOptions(), *,
                   strategy: str = "vanilla", prompts: Prompts | None = None, decoding: Decoding | None = None,
                   shots: int = 5, pool: tuple[Sequence[str], Sequence[str]] | None = None,
                   backend: ChatBackend | None = None) -> Annotator:
    """Build the annotator ``spec`` names; ``encoder`` is the shared embedding model.

    A chat model answers through ``strategy``, retrieving its examples from ``pool`` (texts and
    labels: the preference samples, the same labelled budget as the memory bank), through
    ``backend`` when the caller has built it already.
    """
    kind, arg = _parse(spec)
    if shots < 0:
        raise CmalignError(f"{{=shots}} {shots} is below 0")
    if kind not in CHAT_KINDS and (strategy != "vanilla" or (decoding is not None and decoding.samples > 1)):
        flag = f"{{=strategy}} {strategy}" if strategy != "vanilla" else f"{{=samples}} {decoding.samples}"
        raise CmalignError(f"{flag} is for chat models (hf:PATH, openai:MODEL); {spec} scores every label "
                           "with its own prompt")
    if kind == "embedded":
        return EmbeddingAnnotator(encoder)
    if kind == "hf-score":
        from .hf_score import HFLabelScorer  # imports torch/transformers: only when asked for

        return HFLabelScorer(arg, device=options.device,
                             **({} if prompts is None else {"system_prompt": prompts.scorer_system}))
    if kind == "openai-score":
        from .openai_score import OpenAILabelScorer

        return OpenAILabelScorer(backend or make_backend(spec, options), prompts=prompts)
    from ..prompting import ChatAnnotator, ExampleRetriever

    retriever = ExampleRetriever(encoder, *pool) if pool is not None else None
    return ChatAnnotator(backend or make_backend(spec, options), strategy, prompts=prompts, k=shots, retriever=retriever,
                         decoding=decoding)


def make_backend(spec: str, options: BackendOptions = BackendOptions()) -> ChatBackend:
    """Build the chat backend ``hf:PATH``, ``openai:MODEL`` or ``openai-score:MODEL`` sends through."""
    kind, arg = _parse(spec)
    if kind in ("openai", "openai-score"):
        from ..chat.openai_api import OpenAIChatBackend

        return OpenAIChatBackend(arg, base_url=options.base_url, api_key_env=options.api_key_env,
                                 concurrency=options.concurrency, timeout=options.timeout,
                                 max_retries=options.retries, cache=options.open_cache(),
                                 max_calls=options.max_calls)
    if kind == "hf":
        from ..chat.hf_chat import HFChatBackend

        return HFChatBackend(arg, batch_size=options.batch_size, device=options.device,
                             cache=options.open_cache(), max_calls=options.max_calls)
    raise CmalignError(f"{spec!r} is not a chat model; chat models: hf:PATH, openai:MODEL")
