"""The model ``serve`` answers with, how it learns from new labels, and how requests reach it.

- :class:`Generation`: one fitted labeller and its ``model_version``, never changed once built.
- :class:`ServedModel`: the bank's labeller first (loaded as ``annotate`` loads it), then each
  refit on the bank's preference samples plus every label given since. A refit runs on a thread of
  its own, through an encoder of its own over the same loaded model; requests go on being answered
  by the current generation until the new one is whole, then one assignment swaps it in. A refit
  that fails is logged and the current generation stays.
- Labelling runs on one thread that takes every text waiting from concurrent requests (up to
  ``max_batch``) and labels them in one call (micro-batching). The embedded encoder reads each
  text alone, so a text's record does not depend on the texts it is batched with.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..encoder import SentenceEncoder
from ..errors import DataError
from ..jobs.common import Model
from ..labeler import Labeler
from ..method.base import Record
from ..method.bank import MemoryBank
from ..progress import QUIET, Progress
from .options import ServeOptions
from .store import LabelStore, StoredLabel, labels_path

log = logging.getLogger("cmalign.serve")


def served_path(bank_path: str | Path) -> Path:
    """Where each refitted bank is written: ``bank.json`` -> ``bank.served.json`` (``cmalign
    annotate --bank`` reads it, and labels as the server does)."""
    bank_path = Path(bank_path)
    return bank_path.with_name(f"{bank_path.stem}.served.json")


@dataclass(frozen=True)
class Generation:
    """One fitted labeller: its ``version`` (the method and a digest of the bank it learned), how
    many lines of the labels file it learned from, and when it was ready."""

    labeler: Labeler
    version: str
    learned: int
    ready_at: float

    @classmethod
    def of(cls, labeler: Labeler, learned: int) -> Generation:
        return cls(labeler, f"{labeler.method}-{labeler.bank_.digest()[:12]}", learned, time.time())


class ServedModel:
    """The current :class:`Generation`, the labels file, the labelling thread and the refits."""

    def __init__(self, options: ServeOptions, progress: Progress = QUIET) -> None:
        self.options = options
        self.bank = MemoryBank.load(options.bank)
        if not self.bank.samples:
            raise DataError("this bank keeps only counts; serve refits on the preference samples and the labels it "
                            "is given: fit the bank again with 'cmalign fit'", options.bank)
        self.store = LabelStore(labels_path(options.bank))
        self._model = Model(options.model, progress)
        progress.phase(f"loading the bank {options.bank}")
        labeler = self._model.labeler(self.bank, options.bank)  # as annotate loads it
        self.current = Generation.of(labeler, 0)
        self.refits, self.refit_error, self.refitting = 0, None, False
        self._wake, self._stopping = threading.Event(), False
        if len(self.store):  # labels given before a restart: learned before the first request
            progress.phase(f"learning the {len(self.store)} labels in {self.store.path}")
            self._refit("labels kept from before the start")
        self._queue: queue.Queue = queue.Queue()
        self._labelling = threading.Thread(target=self._label_loop, name="cmalign-label", daemon=True)
        self._refitter = threading.Thread(target=self._refit_loop, name="cmalign-refit", daemon=True)
        self._labelling.start()
        self._refitter.start()

    # -- labelling -----------------------------------------------------------------------------

    async def label(self, texts: list[str]) -> tuple[Generation, list[Record]]:
        """The current generation's records for ``texts``, labelled with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((texts, future, loop))
        return await future

    def _label_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, n, stop = [job], len(job[0]), False
            while n < self.options.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                n += len(job[0])
            generation = self.current  # one generation for the whole batch, whatever a refit swaps in
            try:
                records = generation.labeler.records([text for texts, _, _ in jobs for text in texts])
            except Exception as exc:  # an LLM that failed: every waiting request hears it
                log.exception("labelling %d texts failed", n)
                for _, future, loop in jobs:
                    loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                start = 0
                for texts, future, loop in jobs:
                    part = records[start:start + len(texts)]
                    start += len(texts)
                    loop.call_soon_threadsafe(_settle, future, (generation, part), None)
            if stop:
                return

    # -- learning ------------------------------------------------------------------------------

    def add(self, labels: list[StoredLabel]) -> int:
        """Store ``labels`` durably (fsynced before this returns); start a refit when enough have
        come. The number of labels given so far."""
        total = self.store.add(labels)
        if self.options.refit_after and total - self.current.learned >= self.options.refit_after:
            self.request_refit()
        return total

    def request_refit(self) -> None:
        """Refit in the background on every label so far (a refit under way is followed by another)."""
        self._wake.set()

    def _refit_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            self._refit("new labels")

    def _refit(self, why: str) -> None:
        labels, lines = self.store.snapshot()
        if lines == self.current.learned and self.current.learned:
            return  # nothing new since the last refit
        texts = [s.text for s in self.bank.samples] + [label.text for label in labels]
        y = [s.label for s in self.bank.samples] + [label.label for label in labels]
        self.refitting = True
        started = time.perf_counter()
        try:
            base = self._model.encoder
            model = Model(self.options.model, encoder=SentenceEncoder(base.embedder, cache_size=base.cache_size))
            labeler = Labeler(model.annotator((texts, y)), self.options.model.method, encoder=model.encoder)
            labeler.fit(texts, y, label_set=self.bank.labels, budget=f"n={len(texts)}")
            labeler.save(served_path(self.options.bank))
        except Exception:  # any failure leaves the model serving as it was
            log.exception("refit on %d samples failed; %s keeps serving", len(texts), self.current.version)
            self.refit_error = f"the refit on {len(texts)} samples failed (see the server's log)"
            return
        finally:
            self.refitting = False
        generation = Generation.of(labeler, lines)
        self.current = generation  # the swap: one assignment, read once per labelled batch
        self.refits += 1
        self.refit_error = None
        log.info("refitted on %d samples (%s) in %.1fs: model_version %s", len(texts), why,
                 time.perf_counter() - started, generation.version)

    # -- what it is ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """``GET /v1/model``: the version, label set, counts and what the model learned."""
        generation = self.current
        bank = generation.labeler.bank_
        given = len(self.store)
        per_label = Counter(s.label for s in bank.samples)
        return {
            "model_version": generation.version,
            "method": generation.labeler.method,
            "annotator": generation.labeler.annotator.identity,
            "labels": list(bank.labels.labels),
            "counts": {"samples": bank.n_samples, "bank_samples": self.bank.n_samples, "labels_given": given,
                       "labels_learned": generation.learned, "labels_pending": given - generation.learned,
                       "per_label": {label: per_label.get(label, 0) for label in bank.labels.labels}},
            "learned": bank.describe(),
            "refits": self.refits,
            "refitting": self.refitting,
            "refit_error": self.refit_error,
            "ready_at": generation.ready_at,
        }

    def close(self) -> None:
        """Finish the labelling under way and stop; a refit under way is left (its labels are kept).
        Closing again does nothing."""
        if self._stopping:
            return
        self._stopping = True
        self._queue.put(None)
        self._wake.set()
        self._labelling.join()
        if self.refitting:
            log.info("stopping during a refit: it is dropped; the labels it was learning are kept in %s",
                     self.store.path)
        self.store.close()


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request went away (a client that hung up)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
