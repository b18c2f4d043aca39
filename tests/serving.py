"""A real ``cmalign serve`` process on loopback for the tests and the benchmark, and a plain
HTTP client for it (the standard library's: what any caller has)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"


def fit_bank(folder: Path, items, labels=None) -> Path:
    """``cmalign fit`` on ``items`` (with ``.text`` and ``.label``) into ``folder/bank.json``, over
    the label set ``labels`` (default: the items' own)."""
    (folder / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n" for i in items))
    argv = ["fit", str(folder / "prefs.jsonl"), "-o", str(folder / "bank.json"), "-q"]
    if labels is not None:
        (folder / "labels.txt").write_text("\n".join(labels) + "\n")
        argv += ["--labels", str(folder / "labels.txt")]
    subprocess.run([sys.executable, "-m", "cmalign", *argv], check=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    return folder / "bank.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, method: str = "GET", body: Any = None, *, raw: bytes | None = None, token: str | None = None,
         basic: str | None = None, headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, Any]:
    """(status, decoded JSON) of one request; ``raw`` is sent as it is, ``body`` as JSON."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if basic is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(basic.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    """``cmalign serve --bank BANK ARGS...`` in a process of its own, its log in ``log``."""

    def __init__(self, bank: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(bank).with_name(f"serve-{self.port}.log")
        environ = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "cmalign", "serve", "--bank", str(bank),
                                             "--port", str(self.port), *args], stdout=log, stderr=log, env=environ)
        deadline = time.monotonic() + 120
        while True:
            try:
                if call(self.url + "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cmalign serve did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def __call__(self, path: str, method: str = "GET", body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return call(self.url + path, method, body, **kwargs)

    def wait_for(self, condition, what: str, timeout: float = 120, **kwargs: Any) -> dict:
        """``GET /v1/model`` until ``condition(model)`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, model = self("/v1/model", **kwargs)
            if status == 200 and condition(model):
                return model
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
