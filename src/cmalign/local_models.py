"""Model files that live on this machine: where they are, what they hold, how they are loaded.

Nothing here touches a model hub: a causal LM is read from a folder or a ``.gguf`` file, and
weights are checked by checksum (the sentence encoders: :mod:`cmalign.embedders`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ModelError

def cache_home() -> Path:
    """Where cmalign keeps what it can make again: ``$XDG_CACHE_HOME/cmalign`` (``~/.cache/cmalign``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cmalign"


def file_sha256(path: Path) -> str:
    """SHA-256 of a (large) file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_causal_lm(path: str | Path, device: str = "cpu"):
    """Load (tokenizer, model, weights file) from a model folder or a .gguf file, never from a hub."""
    path = Path(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if path.is_file() and path.suffix == ".gguf":
        folder, extra, weights = path.parent, {"gguf_file": path.name}, path
    elif path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        safetensors = sorted(path.glob("*.safetensors"))
        if safetensors:
            folder, extra, weights = path, {}, safetensors[0]
        elif len(ggufs) == 1:
            folder, extra, weights = path, {"gguf_file": ggufs[0].name}, ggufs[0]
        else:
            raise ModelError(f"{path}: no *.safetensors and not exactly one *.gguf in the folder")
    else:
        raise ModelError(f"{path}: no such model folder or .gguf file")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **extra)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32, **extra)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the model ({exc})") from None
    model.to(device).eval()
    return tokenizer, model, weights


def end_of_turn(tokenizer) -> int | None:
    """The token that ends an assistant turn in ChatML-style templates, if the vocabulary has one."""
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return end if isinstance(end, int) and end != tokenizer.unk_token_id else None
