"""A local causal LM answering chat requests (Hugging Face transformers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..chunks import batched
from ..local_models import end_of_turn, file_sha256, load_causal_lm
from .backend import ChatBackend, ChatRequest, Completion, ResponseCache, Store


class HFChatBackend(ChatBackend):
    """A local causal LM answering chat requests through its own chat template.

    Greedy requests (temperature 0) are generated in batches of ``batch_size``, left-padded and
    sorted by length; sampled requests one at a time, each seeded with its own ``seed`` so that
    its answer does not depend on what else is in the batch.

    >>> backend = HFChatBackend("/models/SmolLM2-135M-Instruct.gguf")  # doctest: +SKIP
    >>> backend.complete([ChatRequest.of([{"role": "user", "content": "Say hi"}])])[0].text  # doctest: +SKIP
    'Hello! How can I help you today?'
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", batch_size: int = 8,
                 cache: ResponseCache | None = None, max_calls: int | None = None, loaded=None) -> None:
        super().__init__(cache=cache, max_calls=max_calls)
        import torch

        self._torch = torch
        self.path = Path(path)
        self.tokenizer, self.model, weights = loaded if loaded is not None else load_causal_lm(self.path, device)
        self.device = device
        self.batch_size = batch_size
        self._weights_digest = file_sha256(weights)
        self._stop_ids = sorted({i for i in (end_of_turn(self.tokenizer), self.tokenizer.eos_token_id)
                                 if i is not None})
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._stop_ids[0]

    @property
    def model_id(self) -> str:
        return f"hf:{self.path.name}@{self._weights_digest[:12]}"

    def _prompt_ids(self, request: ChatRequest) -> list[int]:
        rendered = self.tokenizer.apply_chat_template(request.message_dicts(), tokenize=False,
                                                      add_generation_prompt=True)
        return self.tokenizer(rendered, add_special_tokens=False).input_ids

    def estimate_prompt_tokens(self, requests: Sequence[ChatRequest]) -> int:
        """Exact here: the requests through the model's own chat template and tokenizer."""
        return sum(len(self._prompt_ids(r)) for r in requests)

    def _generate(self, prompts: list[list[int]], request: ChatRequest) -> list[Completion]:
        """Generate for prompts that share ``request``'s decoding parameters."""
        torch = self._torch
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self._pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        sampling = {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p} \
            if request.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=request.max_tokens,
                                      eos_token_id=self._stop_ids, pad_token_id=self._pad_id, **sampling)
        completions = []
        for prompt, row in zip(prompts, out[:, width:].tolist()):
            stop = next((j for j, t in enumerate(row) if t in self._stop_ids), None)
            tokens = row if stop is None else row[:stop]
            completions.append(Completion(
                text=self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                prompt_tokens=len(prompt), completion_tokens=len(tokens) + (stop is not None),
                finish_reason="length" if stop is None else "stop"))
        return completions

    def _send(self, requests: Sequence[ChatRequest], store: Store) -> None:
        prompts = [self._prompt_ids(r) for r in requests]
        greedy: dict[int, list[int]] = {}
        for i, request in enumerate(requests):
            if request.temperature > 0:
                self._torch.manual_seed(request.seed)
                store(i, self._generate([prompts[i]], request)[0])
            else:
                greedy.setdefault(request.max_tokens, []).append(i)
        for group in greedy.values():
            group.sort(key=lambda i: len(prompts[i]))
            for batch in batched(group, self.batch_size):
                for i, completion in zip(batch, self._generate([prompts[i] for i in batch], requests[batch[0]])):
                    store(i, completion)
