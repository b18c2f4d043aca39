"""Where the chunks of a corpus are labelled: in this process (the default) or on a Ray cluster.

:class:`RayEngine` starts ``workers`` Ray actors; each builds the labeller once (the model is
loaded once per worker, never per chunk) and labels the chunks it is sent. The process that runs
``annotate`` still reads the input, resumes and writes the output, so the file is the same line for
line as a single-process run, and resuming and the one-writer lock work the same way. Chunks
are sent as they are read, at most ``2 x workers`` in flight, and their records come back in input
order: memory stays bounded whatever the corpus size.

Why Ray core actors and not a Ray Data pipeline: a Ray dataset is built either from a list held in
memory or by Ray's own file readers, and neither keeps this project's line numbers, input checks
and resume point; a dataset per window of the stream would load the model again per window.

>>> engine = RayEngine(functools.partial(my_labeler_factory, "bank.json"), workers=4)  # doctest: +SKIP
>>> labeler.label_into(output, items, engine=engine)                                   # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from .chat.backend import Usage
from .data.fields import Item
from .errors import CmalignError
from .labeler import Labeler
from .method.base import Record
from .process import map_large_blocks, set_threads, trim_memory


class _Worker:
    """One Ray actor: the labeller built once, then a chunk of texts at a time."""

    def __init__(self, factory: Callable[[], Labeler], threads: int) -> None:
        set_threads(threads)
        map_large_blocks()
        self.labeler = factory()

    def label(self, texts: list[str]) -> list[Record]:
        records = self.labeler.records(texts)
        trim_memory()
        return records

    def usage(self) -> tuple[int, Usage | None]:
        annotator = self.labeler.annotator
        backend = annotator.backend
        return annotator.calls, None if backend is None else backend.usage


class RayEngine:
    """Label on Ray: ``factory`` (picklable, no arguments) builds the fitted :class:`Labeler` in
    each worker. ``address`` is a running cluster's (``auto``, ``ray://host:10001``; default
    ``$RAY_ADDRESS``); with neither, a local Ray with ``workers`` CPUs is started for this run and
    stopped after it. Each worker uses ``threads`` threads (default: one). Matrix products are
    summed in an order that depends on the thread count, so a worker with the thread count of a
    local run computes its numbers to the last bit; with another, a confidence can differ in its
    last printed digit."""

    def __init__(self, factory: Callable[[], Labeler], *, workers: int = 2, address: str | None = None,
                 threads: int = 1) -> None:
        if workers < 1:
            raise CmalignError(f"{{=workers}} {workers}: need at least one worker")
        self.factory, self.workers, self.threads = factory, workers, threads
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS")
        self.calls = 0
        self.usage: Usage | None = None

    @staticmethod
    def preflight(address: str | None) -> None:
        """Fail at once where a run could not start: Ray not installed, or nothing listening at the
        cluster's address (before the model learns anything, so no work is thrown away)."""
        if importlib.util.find_spec("ray") is None:
            raise CmalignError("{=engine} ray needs Ray: pip install 'cmalign[ray]'")
        _check_reachable(address if address is not None else os.environ.get("RAY_ADDRESS"))

    def label(self, labeler: Labeler, chunks: Iterable[list[Item]]) -> Iterator[tuple[list[Item], list[Record]]]:
        self.preflight(self.address)
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            try:
                env = {"env_vars": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}}
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, runtime_env=env)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False, runtime_env=env)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise CmalignError(f"cannot start or reach Ray at {self.address or 'a local instance'}: "
                                   f"{str(exc).splitlines()[0]}") from None
        try:
            worker = ray.remote(num_cpus=1)(_Worker)
            actors = [worker.remote(self.factory, self.threads) for _ in range(self.workers)]
            yield from self._in_order(ray, actors, chunks)
            self._collect_usage(ray, actors)
        finally:
            if started_here:
                ray.shutdown()

    def _in_order(self, ray, actors: list, chunks: Iterable[list[Item]]) -> Iterator[tuple[list[Item], list[Record]]]:
        """Send chunks round-robin, at most two per worker in flight; yield them back in order."""
        pending: deque = deque()
        chunks = iter(chunks)
        sent = 0
        while True:
            while len(pending) < 2 * len(actors) and (chunk := next(chunks, None)) is not None:
                pending.append((chunk, actors[sent % len(actors)].label.remote([i.text for i in chunk])))
                sent += 1
            if not pending:
                return
            chunk, ref = pending.popleft()
            yield chunk, _get(ray, ref)

    def _collect_usage(self, ray, actors: list) -> None:
        for calls, usage in (_get(ray, a.usage.remote()) for a in actors):
            self.calls += calls
            if usage is not None:
                self.usage = usage if self.usage is None else Usage(
                    *(getattr(self.usage, f) + getattr(usage, f) for f in Usage.__dataclass_fields__))


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail at once on a ``host:port`` (or ``ray://host:port``) nothing listens on: Ray itself
    retries such an address for minutes before it gives up."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CmalignError(f"{{=ray_address}} {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise CmalignError(f"cannot start or reach Ray at {address}: {exc.strerror or exc}") from None


def _get(ray, ref):
    """``ray.get``, with a worker's own error (a bad model path, say) raised as it is."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, CmalignError):
            raise exc.cause from None
        raise CmalignError(f"a Ray worker failed: {str(exc.cause or exc).splitlines()[0]}; the lines written "
                           "so far are kept: {=resume} to go on") from None
    except ray.exceptions.RayActorError as exc:
        raise CmalignError(f"a Ray worker died ({str(exc).splitlines()[0]}); the lines written so far are "
                           "kept: {=resume} to go on") from None
