"""What every job shares: the model it labels with, built once from its options, and its inputs.

:class:`ModelOptions` says which annotator answers (the embedded model or an LLM and how it is
prompted, reached and paid for), which method corrects it and on what device; :class:`Model` builds
them once per job, and is the one place where an annotator meets the bank it retrieves its
examples from.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..annotators.base import Annotator
from ..annotators.registry import SPECS, BackendOptions, is_backend, is_chat, make_annotator, make_backend
from ..chat.backend import ChatBackend
from ..embedders import DEFAULT as DEFAULT_ENCODER
from ..embedders import ENCODERS, check_spec
from ..encoder import SentenceEncoder, default_encoder
from ..errors import CmalignError, DataError
from ..files import is_stdio
from ..labeler import Labeler
from ..method.bank import MemoryBank
from ..method.registry import METHODS, default_method
from ..progress import QUIET, Progress, log
from ..prompting import Decoding, Prompts
from ..prompting.strategies import STRATEGIES
from ..settings import setting

STDIN_NAME = "<stdin>"


@dataclass(frozen=True)
class ModelOptions:
    """Who answers and how: the ``annotator`` (``embedded``, ``hf:PATH``, ``openai:MODEL``, ...),
    the ``method`` around it (default: the registry's best), a chat model's ``strategy``, prompt
    templates (a TOML file), ``decoding`` and ``shots``, how its server is reached and paid for
    (``backend``), the ``device`` of local models, and the sentence ``encoder`` every text is read
    through (see :mod:`cmalign.embedders`)."""

    annotator: str = setting("embedded", f"the annotator: {SPECS}")
    method: str | None = setting(None, "the method (default: cm_best, for every annotator; the docs' Methods page "
                                 "says what each does)", choices=list(METHODS))
    strategy: str = setting("vanilla", "prompting strategy", choices=STRATEGIES)
    backend: BackendOptions = field(default_factory=BackendOptions)
    prompts: str | None = setting(None, "your prompt templates (TOML; see 'cmalign prompts')")
    decoding: Decoding = field(default_factory=Decoding)
    shots: int = setting(5, "examples shown by fot")
    device: str = setting("cpu", "local models and the encoder: cpu, cuda, mps")
    encoder: str = setting(DEFAULT_ENCODER, f"sentence encoder: {ENCODERS}")

    def __post_init__(self) -> None:
        check_spec(self.encoder)  # a misspelt encoder fails before any file is read

    @property
    def method_name(self) -> str:
        return self.method if self.method is not None else default_method()

    def prompt_templates(self) -> Prompts:
        return Prompts.load(self.prompts) if self.prompts else Prompts()


class Model:
    """The encoder, annotator and labeller one job uses, built when first needed. ``encoder``: one
    to use instead of the process's shared one (``serve`` fits each new model through an encoder of
    its own over the same loaded model, since an encoder's cache is not shared across threads)."""

    def __init__(self, options: ModelOptions, progress: Progress = QUIET, *,
                 encoder: SentenceEncoder | None = None) -> None:
        self.options, self.progress = options, progress
        if encoder is not None:
            self.__dict__["encoder"] = encoder  # the cached property, set

    @cached_property
    def encoder(self) -> SentenceEncoder:
        self.progress.phase("loading the model")
        o = self.options
        return default_encoder(o.encoder, o.device, o.backend if o.encoder.startswith("openai-embed:") else None)

    def annotator(self, pool: MemoryBank | tuple[list[str], list[str]] | None = None) -> Annotator:
        """The annotator; a chat model retrieves its examples from ``pool`` (a bank's preference
        samples, or texts and labels)."""
        o = self.options
        if isinstance(pool, MemoryBank):
            pool = ([s.text for s in pool.samples], [s.label for s in pool.samples])
        prompts = o.prompt_templates()  # settings and templates are checked before the model loads
        backend = make_backend(o.annotator, o.backend) if is_backend(o.annotator) else None
        annotator = make_annotator(o.annotator, self.encoder, o.backend, strategy=o.strategy, prompts=prompts,
                                   shots=o.shots, pool=pool, decoding=o.decoding, backend=backend)
        if annotator.backend is not None:
            annotator.backend.progress = self.progress.enabled and self.progress.terminal
        return annotator

    def backend(self) -> ChatBackend | None:
        """A chat model's backend alone (``bench`` builds its strategies over it); None for a scorer."""
        return make_backend(self.options.annotator, self.options.backend) if is_chat(self.options.annotator) else None

    def labeler(self, bank: MemoryBank, bank_path: str | Path, *, chunk_size: int = 2048) -> Labeler:
        """The labeller of ``bank``, with the method's saved state beside it where it matches."""
        return Labeler.load(bank_path, self.annotator(bank), self.options.method, encoder=self.encoder, bank=bank,
                            chunk_size=chunk_size)


def say_usage(annotator: Annotator | ChatBackend | None) -> None:
    """Log what a chat model's requests cost so far (nothing for the embedded model)."""
    backend = annotator.backend if isinstance(annotator, Annotator) else annotator
    if backend is not None:
        log.info("%s", backend.usage.summary(backend.model_id))


def at_least(name: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise CmalignError(f"{{={name}}} {value}: must be at least {low}")


@contextmanager
def readable(path: str | Path) -> Iterator[Path]:
    """``path``, or for ``-`` standard input saved to a temporary file first (a job may read its
    input twice: once to check it, once to label it). Its format is read from its first character:
    ``{`` JSONL, ``[`` a Label Studio export, else CSV (TSV when the header has tabs and no comma).
    Errors name ``<stdin>``."""
    if not is_stdio(path):
        yield Path(path)
        return
    folder = Path(tempfile.mkdtemp(prefix="cmalign-stdin-"))
    try:
        spooled = folder / "stdin"
        with open(spooled, "wb") as handle:
            shutil.copyfileobj(sys.stdin.buffer, handle, 1 << 20)
        named = spooled.with_name("stdin" + _suffix(spooled))
        spooled.rename(named)
        try:
            yield named
        except DataError as exc:
            if exc.path != str(named):
                raise
            raise DataError(exc.problem, STDIN_NAME, exc.line, exc.column, exc.unit) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _suffix(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if stripped[:1] == b"{":
        return ".jsonl"
    if stripped[:1] == b"[":
        return ".json"
    header = stripped.split(b"\n", 1)[0]
    return ".tsv" if b"\t" in header and b"," not in header else ".csv"
