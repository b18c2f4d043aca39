"""A real OpenAI-compatible server for tests, and a proxy in front of it that injects faults.

The server is llama-cpp-python's (`python -m llama_cpp.server`) serving SmolLM2-135M-Instruct on
loopback. The proxy forwards every request to it unchanged, except those it is told to fail:
``"429"`` (rate limited, with ``Retry-After``), ``"500"``/``"503"``, ``"401"`` (a wrong key, echoed back
part-masked as OpenAI does), ``"slow"`` (answers after
``delay`` seconds), ``"drop"`` (closes the connection without answering), ``"html"`` (a gateway's
error page as a 200), and, forwarding and then changing the answer, ``"strip-logprobs"`` (takes the
token log-probabilities out, as a server without them does), ``"empty-choices"``, ``"null-content"``
and ``"nan-logprobs"``; for embeddings, ``"nan-vector"`` (a NaN in the first vector) and
``"short-data"`` (one vector fewer than the texts sent).

:class:`FaultServer` needs no model: it answers right by a rule, and replies malformed, empty,
NaN, oversize, slow or with a reset connection where its script says so.
"""

from __future__ import annotations

import http.client
import json
import math
import re
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

    def __init__(self, gguf: Path, log: Path, *options: str, embeddings: bool = False) -> None:
        self.port = free_port()
        self.log = log
        # embeddings: served mean-pooled, one vector per text (see embedding_server.py)
        server = [str(Path(__file__).with_name("embedding_server.py")), "--embedding", "true"] if embeddings \
            else ["-m", "llama_cpp.server"]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, *server, "--model", str(gguf), "--host", "127.0.0.1",
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
                if fault == "html":  # a gateway's error page, sent as a success
                    self._reply(200, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})
                    return
                status, answer = proxy._forward("POST", self.path, body)
                if status == 200 and fault in ("nan-vector", "short-data"):  # an embeddings reply, broken
                    reply = json.loads(answer)
                    if fault == "nan-vector":
                        reply["data"][0]["embedding"][0] = math.nan
                    else:
                        reply["data"] = reply["data"][:-1]
                    answer = json.dumps(reply).encode()
                if status == 200 and fault in ("strip-logprobs", "empty-choices", "null-content", "nan-logprobs"):
                    reply = json.loads(answer)
                    for choice in reply.get("choices", []):
                        if fault == "strip-logprobs":
                            choice["logprobs"] = None
                        if fault == "null-content":
                            choice["message"]["content"] = None
                        if fault == "nan-logprobs":
                            for token in (choice.get("logprobs") or {}).get("content") or ():
                                token["logprob"] = math.nan
                    if fault == "empty-choices":
                        reply["choices"] = []
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


class FaultServer:
    """An OpenAI-compatible chat server on loopback that answers from a rule and fails on a script.

    A healthy reply is right: the label named in the request's user message (a text of the tests
    holds its label's word), as the label itself, or, when the request asks for log-probabilities,
    as the letter of that option with log-probabilities that favour it. ``plan`` lists the replies
    of the next requests (``default`` once it is used up); each is one of :data:`FAULTS`. ``seen``
    counts chat completion requests received, ``bodies`` holds them.
    """

    FAULTS = ("ok", "empty-choices", "null-content", "html", "not-json", "error-200", "nan", "inf", "logprob-1000",
              "positive", "null-logprob", "minus-inf", "no-letter", "oversize", "oversize-unsized", "slow", "reset",
              "reset-mid-body", "401-text", "500", "429")

    def __init__(self) -> None:
        self.plan: list[str] = []
        self.default = "ok"
        self.delay = 3.0
        self.oversize = 2 << 20
        self.text_401 = "Unauthorized: this key is not valid for the project"
        self.seen = 0
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _reset(self) -> None:  # an RST, as a crashed server or a proxy that gives up sends
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.close_connection = True
                self.connection.close()

            def do_GET(self) -> None:
                self._reply(200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode())

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server._lock:
                    server.seen += 1
                    server.bodies.append(request)
                    fault = server.plan.pop(0) if server.plan else server.default
                if fault == "slow":
                    time.sleep(server.delay)
                if fault == "reset":
                    self._reset()
                    return
                if fault == "401-text":
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    self._reply(401, f"{server.text_401} (key {key})\n".encode(), "text/plain")
                    return
                if fault in ("500", "429"):
                    self._reply(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode())
                    return
                if fault == "html":
                    self._reply(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
                    return
                if fault == "not-json":
                    self._reply(200, b'{"choices": [{"message": {"content": "ala')
                    return
                if fault == "error-200":
                    self._reply(200, json.dumps({"error": {"message": "upstream overloaded"}}).encode())
                    return
                reply = server.answer(request, fault)
                body = json.dumps(reply).encode()  # NaN and Infinity as Python writes them
                if fault == "oversize-unsized":  # no Content-Length: the body ends when the connection does
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: as it should
                        pass
                    return
                if fault == "reset-mid-body":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:len(body) // 2])
                    self._reset()
                    return
                self._reply(200, body)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:  # a client that hung up: expected here
                pass

        self._server = Quiet(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @staticmethod
    def right(request: dict) -> tuple[str, list[tuple[str, str]]]:
        """The label a request's text names, and the request's lettered options (if it shows any)."""
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        options = [tuple(line.split(". ", 1)) for line in system.splitlines() if re.match(r"^[A-T]\. ", line)]
        labels = [o for _, o in options] or [line[2:] for line in system.splitlines() if line.startswith("- ")]
        named = [label for label in labels if label in user]
        return (max(named, key=len) if named else "none of these"), options

    def answer(self, request: dict, fault: str) -> dict:
        label, options = self.right(request)
        message: dict = {"role": "assistant", "content": label}
        choice: dict = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        if request.get("logprobs"):
            letter = next((code for code, option in options if option == label), options[-1][0])
            others = [code for code, _ in options if code != letter]
            top = [(letter, math.log(0.8))] + [(c, math.log(0.2 / len(others))) for c in others]
            if fault == "no-letter":
                top = [("The", math.log(0.6)), ("I", math.log(0.3)), ("Sure", math.log(0.1))]
            bad = {"nan": math.nan, "inf": math.inf, "logprob-1000": 1000.0, "positive": 0.5,
                   "null-logprob": None}.get(fault, top[0][1])
            top[0] = (top[0][0], bad)
            if fault == "minus-inf":  # an alternative that cannot follow, as a server may write it
                top[-1] = (top[-1][0], -math.inf)
            message["content"] = top[0][0]
            choice["logprobs"] = {"content": [{"token": top[0][0], "logprob": bad, "bytes": None,
                                               "top_logprobs": [{"token": t, "logprob": lp, "bytes": None}
                                                                for t, lp in top]}]}
        if fault == "null-content":
            message["content"] = None
        if fault.startswith("oversize"):
            message["content"] = "x" * self.oversize
        reply = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": request["model"],
                 "choices": [choice], "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}}
        if fault == "empty-choices":
            reply["choices"] = []
        return reply

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
