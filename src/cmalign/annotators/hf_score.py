"""A local causal LM that scores every allowed label (Hugging Face transformers).

Instead of generating an answer and parsing it, the model is asked for the log-likelihood of each
allowed label as the whole answer: ``log p(label tokens, end of turn | prompt)``. That gives a full
score vector (so every score-based method works on it), can never answer outside the label set, and
makes CM's re-ask free: restricting to a candidate set is restricting the argmax.

The label list sits in the system message, so the prompt up to the user's text is the same for every
item: its key/value cache is computed once and reused, and each item costs only its own tokens plus
one pass over all the label continuations packed into a single row.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..labels import LabelSet
from ..local_models import end_of_turn, file_sha256, load_causal_lm
from ..prompting.prompts import Prompts
from .base import ScoringAnnotator

_PLACEHOLDER = "\u2063TEXT\u2063"  # invisible separator: never in real text, survives templates


class HFLabelScorer(ScoringAnnotator):
    """Annotator: the label with the highest likelihood as the model's answer, with a score for each.

    >>> annotator = HFLabelScorer("/models/SmolLM2-135M-Instruct.gguf")  # doctest: +SKIP
    >>> annotator.annotate(["wake me up at 7"], LabelSet.of(["alarm", "music"]))[0].label  # doctest: +SKIP
    'alarm'
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", system_prompt: str = Prompts.scorer_system) -> None:
        super().__init__()
        import torch

        self._torch = torch
        self.path = Path(path)
        self.tokenizer, self.model, weights = load_causal_lm(self.path, device)
        self.device = device
        self.system_prompt = system_prompt
        self._weights_digest = file_sha256(weights)
        params = inspect.signature(self.model.forward).parameters
        # transformers renamed past_key_values to cache (5.x); speak whichever this version knows
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._prefix: dict[tuple[str, ...], tuple[object, str, list[list[int]]]] = {}
        # scores of recent (labels, text) pairs: a re-ask within candidates reads them, not the model
        self._scores: OrderedDict[tuple[tuple[str, ...], str], np.ndarray] = OrderedDict()
        self._scores_size = 50_000
        self.scored = 0  # texts actually run through the model
        end = end_of_turn(self.tokenizer)
        self._end_id = end if end is not None else self.tokenizer.eos_token_id

    @property
    def identity(self) -> str:
        prompt = hashlib.sha256(self.system_prompt.encode()).hexdigest()[:8]
        return f"hf:{self.path.name}@{self._weights_digest[:12]}:label-scoring:prompt-{prompt}"

    def _render(self, labels: LabelSet) -> tuple[str, str]:
        """The chat prompt split around the user's text: (shared prefix, suffix after the text)."""
        system = self.system_prompt.format(labels="\n".join(f"- {label}" for label in labels.labels))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": _PLACEHOLDER}]
        rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        before, _, after = rendered.partition(_PLACEHOLDER)
        return before, after

    def _forward(self, ids, cache=None, *, last_only: bool = False, **extra):
        """Run the model on ``ids`` after ``cache``; returns (logits, extended cache)."""
        kwargs = {"use_cache": True, **(self._last_only if last_only else {}), **extra}
        if cache is not None:
            kwargs[self._cache_arg] = cache
        with self._torch.no_grad():
            out = self.model(ids, **kwargs)
        return out.logits, getattr(out, self._cache_arg)

    def _prefix_state(self, labels: LabelSet):
        key = labels.labels
        if key not in self._prefix:
            before, after = self._render(labels)
            ids = self.tokenizer(before, add_special_tokens=False, return_tensors="pt").input_ids.to(self.device)
            _, cache = self._forward(ids, last_only=True)
            continuations = [self.tokenizer(label, add_special_tokens=False).input_ids + [self._end_id]
                             for label in labels.labels]
            self._prefix[key] = (cache, after, continuations)
        return self._prefix[key]

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one entry per label set, for this model's life
    def _packed_continuations(self, labels: LabelSet):
        """All labels' answer tokens as one row, with where each starts and its positions' offsets."""
        _, _, continuations = self._prefix_state(labels)
        torch = self._torch
        tokens = torch.tensor([[t for c in continuations for t in c]], device=self.device)
        starts = np.cumsum([0] + [len(c) for c in continuations[:-1]])
        offsets = torch.tensor([[j for c in continuations for j in range(len(c))]], device=self.device)
        # each answer sees the whole prompt and, causally, only its own earlier tokens
        own = torch.block_diag(*[torch.tril(torch.ones(len(c), len(c), dtype=torch.bool)) for c in continuations])
        return continuations, tokens, starts, offsets, own

    def _score_one(self, text: str, labels: LabelSet) -> np.ndarray:
        """Total log-likelihood of each label (with end of turn) as the answer to ``text``.

        All labels' answers go through the model as one packed row after the prompt, with an
        attention mask that keeps them apart: one pass, no per-label copy of the cache.
        """
        torch = self._torch
        prefix, after, _ = self._prefix_state(labels)
        continuations, tokens, starts, offsets, own = self._packed_continuations(labels)
        item = self.tokenizer(text + after, add_special_tokens=False, return_tensors="pt").input_ids.to(self.device)
        # the shared prefix must stay as it is for the next item: extend a copy
        logits, cache = self._forward(item, copy.deepcopy(prefix), last_only=True)
        first = torch.log_softmax(logits[0, -1].float(), dim=-1)
        seen = cache.get_seq_length()
        width = tokens.shape[1]
        allowed = torch.cat([torch.ones(width, seen, dtype=torch.bool, device=self.device), own], dim=1)
        mask = torch.zeros(allowed.shape, device=self.device).masked_fill(~allowed, float("-inf"))[None, None]
        logits, _ = self._forward(tokens, cache, attention_mask=mask, position_ids=offsets + seen)
        logp = torch.log_softmax(logits[0].float(), dim=-1)
        scores = np.empty(len(continuations))
        for i, (c, start) in enumerate(zip(continuations, starts)):
            total = first[c[0]].item()
            if len(c) > 1:
                total += logp[torch.arange(start, start + len(c) - 1), torch.tensor(c[1:])].sum().item()
            scores[i] = total
        return scores

    def label_scores(self, texts: Sequence[str], labels: LabelSet) -> np.ndarray:
        """Shape (texts, labels): log p(label | prompt with text) for every label."""
        rows = []
        for text in texts:
            key = (labels.labels, text)
            if key not in self._scores:
                self._scores[key] = self._score_one(text, labels)
                self.scored += 1
                if len(self._scores) > self._scores_size:
                    self._scores.popitem(last=False)
            self._scores.move_to_end(key)
            rows.append(self._scores[key])
        return np.stack(rows)
