"""A real OpenAI-compatible server for tests, and a proxy in front of it that injects faults.

The server is llama-cpp-python's (`python -m llama_cpp.server`) serving SmolLM2-135M-Instruct on
loopback. The proxy forwards every request to it unchanged, except those it is told to fail:
``"429"`` (rate limited, with ``Retry-After``), ``"500"``/``"503"``, ``"401"`` (a wrong key, echoed back
part-masked as OpenAI does), ``"slow"`` (answers after
``delay`` seconds), ``"drop"`` (closes the connection without answering) and ``"strip-logprobs"``
(forwards, and takes the token log-probabilities out of the answer, as a server without them does).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODEL_ALIAS = "smollm2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port; ``stop()`` or ``kill()`` ends it."""

    def __init__(self, gguf: Path, log: Path, *options: str) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                 "--port", str(self.port), "--model_alias", MODEL_ALIAS, "--verbose", "false", "--n_ctx", "2048",
                 *options], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({self.process.returncode}):\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not come up in 120 s:\n{log.read_text(errors='replace')[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class FaultProxy:
    """Forwards to ``upstream`` (host, port); ``plan`` lists the faults for the next requests.

    ``default`` is what happens once the plan is used up (``"pass"``: forward). ``seen`` counts
    chat completion requests received, ``forwarded`` those that reached the server and came back.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.plan: list[str] = []
        self.default = "pass"
        self.retry_after = "1"
        self.delay = 3.0
        self.seen = 0
        self.forwarded = 0
        self.authorization: set[str] = set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    self.close_connection = True

            def do_GET(self) -> None:
                status, body = proxy._forward("GET", self.path, None)
                self._reply(status, body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.seen += 1
                    fault = proxy.plan.pop(0) if proxy.plan else proxy.default
                    proxy.authorization.add(self.headers.get("Authorization", ""))
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "401":  # as OpenAI does: the wrong key echoed back, part-masked
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    message = f"Incorrect API key provided: {key[:8]}{'*' * 12}{key[-4:]}."
                    self._reply(401, json.dumps({"error": {"message": message, "type": "invalid_request_error"}}
                                                ).encode())
                    return
                if fault == "400":  # the server refuses the request as such (as for a prompt too long)
                    error = json.dumps({"error": {"message": "injected refusal: this request is not allowed",
                                                  "type": "invalid_request_error"}}).encode()
                    self._reply(400, error)
                    return
                if fault in ("429", "500", "503"):
                    error = json.dumps({"error": {"message": f"injected {fault}", "type": "test"}}).encode()
                    self._reply(int(fault), error, {"Retry-After": proxy.retry_after} if fault == "429" else {})
                    return
                if fault == "slow":
                    time.sleep(proxy.delay)
                status, answer = proxy._forward("POST", self.path, body)
                if fault == "strip-logprobs" and status == 200:
                    reply = json.loads(answer)
                    for choice in reply.get("choices", []):
                        choice["logprobs"] = None
                    answer = json.dumps(reply).encode()
                self._reply(status, answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _forward(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            reply = connection.getresponse()
            data = reply.read()
        except OSError as exc:
            return 502, json.dumps({"error": {"message": f"upstream: {exc}"}}).encode()
        finally:
            connection.close()
        if method == "POST":
            with self._lock:
                self.forwarded += 1
        return reply.status, data

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
