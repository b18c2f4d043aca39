"""The routes of ``cmalign serve``: Label Studio's ML backend protocol and a JSON API, one model.

Every route but ``/health`` needs the bearer token when one is set (``Authorization: Bearer
TOKEN``, or HTTP Basic with the token as the password: what Label Studio sends to a backend it
was given a user and password for). A request is read up to ``max_request_bytes``; every problem
with it is a 4xx whose JSON names the field (:class:`~cmalign.serve.requests.RequestError`).
Each request is one JSON line on the ``cmalign.serve.access`` logger: method, path, status,
milliseconds, bytes sent, client address; never a text, a header or a token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..data.fields import decode_json
from ..errors import DataError
from . import label_studio as ls
from .model import ServedModel
from .options import ServeOptions
from .requests import RequestError, need, text_at
from .store import StoredLabel

log = logging.getLogger("cmalign.serve")
access = logging.getLogger("cmalign.serve.access")
Handler = Callable[[Request], Awaitable[Response]]


def build_app(served: ServedModel, options: ServeOptions) -> Starlette:
    """The ASGI application over ``served``; closing it (the lifespan's end) closes ``served``."""
    token = options.token()
    api = _Api(served, options)

    def route(path: str, handler: Handler, method: str, *, public: bool = False) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                if not public:
                    _authorize(request, token)
                return await handler(request)
            except RequestError as exc:
                return JSONResponse(exc.to_json(), exc.status, headers=_challenge(exc))
        return Route(path, endpoint, methods=[method])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("serving %s on http://%s:%d (model_version %s)", options.bank, options.host, options.port,
                 served.current.version)
        yield
        served.close()  # after the last request in flight: their labels are written already

    routes = [route("/health", api.health, "GET", public=True), route("/", api.health, "GET", public=True),
              route("/setup", api.setup, "POST"), route("/predict", api.predict, "POST"),
              route("/webhook", api.webhook, "POST"), route("/v1/label", api.label, "POST"),
              route("/v1/labels", api.add_labels, "POST"), route("/v1/model", api.model, "GET"),
              route("/v1/refit", api.refit, "POST")]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _bug})
    return _AccessLog(app) if options.access_log else app


class _Api:
    def __init__(self, served: ServedModel, options: ServeOptions) -> None:
        self.served, self.options = served, options

    async def _json(self, request: Request) -> Any:
        limit = self.options.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError(400, "Content-Length", f"{declared[:20]!r} is not a number of bytes")
            if int(declared) > limit:
                raise RequestError(413, "body", f"{declared} bytes; at most {limit} a request")
        body = bytearray()
        async for chunk in request.stream():  # a body sent without a length is counted as it comes
            body += chunk
            if len(body) > limit:
                raise RequestError(413, "body", f"more than {limit} bytes; at most {limit} a request")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "body", "not UTF-8 text") from None
        try:  # the files' strict reader: no key twice, no NaN, no lone surrogate, no nesting too deep
            return decode_json(text, "body")
        except DataError as exc:
            raise RequestError(400, "body", exc.problem) from None

    def _texts(self, values: list, field: str) -> None:
        if len(values) > self.options.max_texts:
            raise RequestError(413, field, f"{len(values)} items; at most {self.options.max_texts} a request")

    def _label(self, text: Any, field: str) -> str:
        """A label the bank's label set holds, spelled as the label set spells it."""
        label = text_at(text, field)
        canonical = self.served.bank.labels.canonical(label)
        if canonical is None:
            raise RequestError(422, field, f"{label[:60]!r} is not one of the bank's {len(self.served.bank.labels)} "
                                           "labels (GET /v1/model lists them)")
        return canonical

    # -- Label Studio ----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "UP", "model_class": "cmalign", "model_version": self.served.current.version})

    async def setup(self, request: Request) -> Response:
        data = await self._json(request)
        config = ls.parse_config(need(data, "schema", str), "schema")
        unknown = [c for c in config.choices if self.served.bank.labels.canonical(c) is None]
        if unknown:
            log.warning("the project's choices include %d the bank does not know (%s): never predicted",
                        len(unknown), ", ".join(unknown[:3]))
        return JSONResponse({"model_version": self.served.current.version})

    async def predict(self, request: Request) -> Response:
        data = await self._json(request)
        tasks = need(data, "tasks", list)
        self._texts(tasks, "tasks")
        config = ls.parse_config(need(data, "label_config", str), "label_config")
        texts = [ls.task_text(task, config, f"tasks[{n}]") for n, task in enumerate(tasks)]
        generation, records = await self.served.label(texts) if texts else (self.served.current, [])
        results = [ls.prediction(r.label, r.confidence, config, generation.version) for r in records]
        return JSONResponse({"results": results, "model_version": generation.version})

    async def webhook(self, request: Request) -> Response:
        data = await self._json(request)
        action = need(data, "action", str)
        if action not in ls.TRAINING_EVENTS:
            return JSONResponse({"status": "Unknown event"})  # as the ML SDK answers events it does not train on
        if action == "ANNOTATIONS_DELETED":  # Label Studio sends their ids alone
            deleted = need(data, "annotations", list)
            return self._stored([line for n, a in enumerate(deleted)
                                 for line in self._withdrawn(ls.annotation_key(a, f"annotations[{n}]"))])
        project = need(data, "project", dict)
        if action == "START_TRAINING":
            self.served.request_refit()
            return JSONResponse({"result": {"refit": "started"}, "status": "ok"}, 201)
        config = ls.parse_config(need(project, "label_config", str, "project"), "project.label_config")
        many = action == "ANNOTATIONS_CREATED"
        annotations = need(data, "annotation", list if many else dict)
        tasks = need(data, "task", list if many else dict)
        pairs = list(zip(annotations, tasks)) if many else [(annotations, tasks)]
        labels = []
        for n, (annotation, task) in enumerate(pairs):
            where = f"[{n}]" if many else ""
            label = ls.annotated_label(annotation, config, "annotation" + where)
            name = ls.annotation_key(annotation, "annotation" + where) if "id" in annotation else None
            if label is None:  # skipped: it teaches nothing, and withdraws what it taught before
                labels += self._withdrawn(name) if name else []
                continue
            text = ls.task_text(task, config, "task" + where)
            key = f"label-studio:{project.get('id')}:{task.get('id')}" if task.get("id") is not None else None
            labels.append(StoredLabel(text, self._label(label, f"annotation{where}.result"), "label-studio", key,
                                      name))
        return self._stored(labels)

    def _withdrawn(self, annotation: str) -> list[StoredLabel]:
        """The line that withdraws ``annotation``'s label; none if it teaches nothing now."""
        last = self.served.store.annotated(annotation)
        if last is None or last.label is None:
            return []
        return [StoredLabel(last.text, None, last.source, last.key, annotation)]

    def _stored(self, labels: list[StoredLabel]) -> Response:
        if labels:
            self.served.add(labels)
        return JSONResponse({"result": {"stored": len(labels)}, "status": "ok"}, 201)

    # -- the JSON API ----------------------------------------------------------------------------

    async def label(self, request: Request) -> Response:
        data = await self._json(request)
        values = need(data, "texts", list)
        self._texts(values, "texts")
        texts = [text_at(value, f"texts[{n}]") for n, value in enumerate(values)]
        generation, records = await self.served.label(texts) if texts else (self.served.current, [])
        method = generation.labeler.method
        return JSONResponse({"model_version": generation.version,
                             "records": [{"text": t, **r.to_json(method)} for t, r in zip(texts, records)]})

    async def add_labels(self, request: Request) -> Response:
        data = await self._json(request)
        values = need(data, "labels", list)
        self._texts(values, "labels")
        labels = []
        for n, value in enumerate(values):
            where = f"labels[{n}]"
            given = isinstance(value, dict) and value.get("id") is not None
            name = f"api:{need(value, 'id', (str, int), where)}" if given else None
            if isinstance(value, dict) and "label" in value and value["label"] is None:  # withdrawn
                if name is None:
                    raise RequestError(422, f"{where}.id", "a label of null withdraws the label of this id: give it")
                labels += self._withdrawn(name)
                continue
            text = text_at(need(value, "text", str, where), f"{where}.text")
            label = self._label(need(value, "label", str, where), f"{where}.label")
            labels.append(StoredLabel(text, label, "api", name, name))
        total = self.served.add(labels) if labels else len(self.served.store)
        return JSONResponse({"stored": len(labels), "labels_given": total,
                             "labels_pending": total - self.served.current.learned,
                             "model_version": self.served.current.version})

    async def model(self, request: Request) -> Response:
        return JSONResponse(self.served.describe())

    async def refit(self, request: Request) -> Response:
        self.served.request_refit()
        return JSONResponse({"refit": "started", "model_version": self.served.current.version}, 202)


def _authorize(request: Request, token: str | None) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "basic":  # Label Studio's user and password for a backend: the token is the password
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            value = ""
    elif scheme.lower() != "bearer":
        value = ""
    if not value:
        raise RequestError(401, "Authorization", "missing: send 'Authorization: Bearer TOKEN'")
    if not hmac.compare_digest(value.encode("utf-8"), token.encode("utf-8")):
        raise RequestError(401, "Authorization", "the token is not this server's")


def _challenge(exc: RequestError) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    field = "path" if exc.status_code == 404 else "method"
    return JSONResponse(RequestError(exc.status_code, field, str(exc.detail)).to_json(), exc.status_code,
                        headers=exc.headers)


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return JSONResponse({"error": {"field": None, "message": "the server failed on this request (see its log)"}}, 500)


class _AccessLog:
    """One JSON line per request: what was asked and how it went, without its content."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status, size = time.perf_counter(), 500, 0

        async def sending(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            access.info("%s", json.dumps({"method": scope["method"], "path": scope["path"], "status": status,
                                          "ms": round((time.perf_counter() - started) * 1000, 1),
                                          "bytes": size, "client": client[0] if client else None}))
