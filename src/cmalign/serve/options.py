"""What ``cmalign serve`` is told: the bank, where to listen, who may call, and its limits.

Kept apart from the server itself so that the command line can build these options without the
``serve`` extra (Starlette, uvicorn) installed; the server imports them when it runs.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CmalignError
from ..jobs.common import ModelOptions, at_least
from ..settings import setting


@dataclass(frozen=True)
class ServeOptions:
    """``bank`` served on ``host``:``port``.

    ``token_env`` names the environment variable holding the bearer token every request but
    ``/health`` must carry (required when ``host`` is not a loopback address). ``refit_after``: new
    labels that start a refit in the background (0: only on Label Studio's ``START_TRAINING`` or
    ``POST /v1/refit``). ``max_request_bytes`` and ``max_texts`` bound one request; ``max_batch``
    bounds the texts labelled together from concurrent requests (micro-batching). ``threads``: the
    encoder's and linear algebra's (default: :func:`~cmalign.process.default_threads`).
    ``access_log``: one JSON line per request on the ``cmalign.serve.access`` logger."""

    bank: str | Path
    host: str = setting("127.0.0.1", "address to listen on (any but a loopback one needs --token-env)")
    port: int = setting(9090, "port")
    token_env: str | None = setting(None, "environment variable holding the bearer token every request but /health "
                                    "must send", metavar="NAME")
    refit_after: int = setting(20, "refit in the background once N new labels have come (0: only on Label Studio's "
                               "START_TRAINING or POST /v1/refit)", metavar="N")
    max_request_bytes: int = setting(1 << 20, "largest request body (default: 1 MiB)")
    max_texts: int = setting(256, "most texts, tasks or labels in one request")
    max_batch: int = setting(512, "most texts from concurrent requests labelled together")
    threads: int | None = None
    access_log: bool = setting(True, "no line per request", name="--no-access-log", dest="access_log",
                               action="store_false")
    model: ModelOptions = field(default_factory=ModelOptions)

    def check(self) -> None:
        """Every setting in range, and a token where the server is reachable beyond this machine."""
        at_least("refit_after", self.refit_after, 0)
        for name in ("max_request_bytes", "max_texts", "max_batch", "threads"):
            at_least(name, getattr(self, name), 1)
        if not 0 <= self.port <= 65535:
            raise CmalignError(f"{{=port}} {self.port}: expected 0 to 65535")
        if self.token_env is not None and not os.environ.get(self.token_env):
            raise CmalignError(f"{{=token_env}} {self.token_env}: that environment variable is not set or is empty")
        if self.token_env is None and not is_loopback(self.host):
            raise CmalignError(f"{{=host}} {self.host} is reachable beyond this machine: give {{=token_env}} (the "
                               "environment variable holding a bearer token every caller must send)")

    def token(self) -> str | None:
        """The bearer token (never logged, printed or written), or None: no token asked for."""
        return os.environ.get(self.token_env) if self.token_env is not None else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reached only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that resolves elsewhere, or every interface
