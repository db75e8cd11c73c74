"""The HTTP transport: every protocol on one port, as a raw ASGI app (served by uvicorn).

Routes: V2 (``/v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}[/versions/{v}]``
with ``/ready``, ``/infer`` and ``/stats``; ``/v2/models/stats``; the repository extension's
``/v2/repository/index`` and ``/v2/repository/models/{name}/load|unload`` when enabled), KServe V1
(``/v1/models/{name}``, ``/v1/models/{name}:predict``), Seldon (``POST /api/v1.0/predictions``, alias
``/api/v0.1/predictions``), MLflow scoring (``POST /invocations`` with one model,
``POST /models/{name}/invocations``, ``GET /ping``), ``/metrics``, and the OpenAPI document with
Swagger UI (``/openapi.json``, ``/docs``). Handlers decode with a codec, call the ``DataPlane``,
encode, and map errors to the protocol's status and error shape.

Why raw ASGI and not FastAPI routes: a FastAPI endpoint costs tens of microseconds of dependency
resolution and response validation per request, more than a small model's prediction; here a
request costs a dict lookup or a string split to route. FastAPI still builds the OpenAPI document
(``openapi.py``).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from modelpier.errors import InvalidInput, PayloadTooLarge, PierError, inference_http_status, retry_after_s
from modelpier.server.codecs import kserve_v1, mlflow_scoring, seldon, v2_binary, v2_json
from modelpier.server.codecs.limits import DEFAULT_MAX_ELEMENTS
from modelpier.server.dataplane import DataPlane
from modelpier.server.deadlines import TIMEOUT_HEADER, header_timeout_s
from modelpier.server.failures import as_pier_error
from modelpier.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from modelpier.server.metrics import ServerMetrics

if TYPE_CHECKING:
    from modelpier.server.openapi import DocsAssets

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
UNKNOWN_MODEL = "_unknown"  # metrics label for names not served: keeps label cardinality bounded


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


async def respond(send: Send, status: int, body: bytes, content_type: bytes = JSON,
                  extra: Headers | None = None) -> None:
    headers: Headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_status(exc: Exception) -> tuple[int, str, str, Headers]:
    """HTTP status, error code, message and extra headers, by the error tree's map for the inference
    protocols (every input error is 400); logs unexpected errors with an id."""
    error = as_pier_error(exc)
    hint = retry_after_s(error)
    extra: Headers = [] if hint is None else [(b"retry-after", str(hint).encode())]
    return inference_http_status(error), error.code, error.message, extra


class HttpApp:
    def __init__(
        self,
        dataplane: DataPlane,
        metrics: ServerMetrics,
        max_body_bytes: int,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
        *,
        max_request_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        self._dp = dataplane
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._max_elements = max_request_elements
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._docs_assets: DocsAssets | None = None  # built on the first /docs request
        self._fixed: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("GET", "/v2/health/live"): self._live,
            ("GET", "/v2/health/ready"): self._ready,
            ("GET", "/v2"): self._server_metadata,
            ("GET", "/v2/"): self._server_metadata,
            ("GET", "/v1/models"): self._v1_list,
            ("POST", "/api/v1.0/predictions"): self._seldon,
            ("POST", "/api/v0.1/predictions"): self._seldon,
            ("POST", "/invocations"): self._invocations,
            ("GET", "/ping"): self._ping,
            ("GET", "/health"): self._ping,
            ("GET", "/metrics"): self._metrics_page,
            ("GET", "/openapi.json"): self._openapi,
            ("GET", "/docs"): self._swagger,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._route(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/v2/models/"):
            await self._v2_model(scope, receive, send, path[11:].split("/"), method)
            return
        if path.startswith("/v2/repository/"):
            await self._repository_api(scope, receive, send, path[15:], method)
            return
        handler = self._fixed.get((method, path))
        if handler is not None:
            await handler(scope, receive, send)
        elif path.startswith("/v1/models/"):
            await self._v1_model(scope, receive, send, path[11:], method)
        elif path.startswith("/models/") and path.endswith("/invocations") and method == "POST":
            await self._score(scope, receive, send, path[8:-12])
        elif method == "GET" and path.startswith("/docs/static/"):
            await self._static(send, path[13:])
        elif any(p == path for _, p in self._fixed):
            await respond(send, 405, v2_json.encode_error(f"method {method} not allowed on {path}"))
        else:
            await respond(send, 404, v2_json.encode_error(f"no route for {method} {path}"))

    # -- body -----------------------------------------------------------------------------------
    def _headers(self, scope: Scope) -> tuple[int | None, bytes, float | None]:
        """The binary extension's header length, the content encoding and the caller's timeout."""
        header_length: int | None = None
        timeout_s: float | None = None
        encoding = b""
        for key, value in scope["headers"]:
            if key == b"content-length":
                if int(value) > self._max_body:
                    raise PayloadTooLarge(f"request body is {int(value)} bytes; the limit is {self._max_body}")
            elif key == b"inference-header-content-length":
                try:
                    header_length = int(value)
                except ValueError:
                    raise InvalidInput("Inference-Header-Content-Length must be an integer") from None
            elif key == b"content-encoding":
                encoding = value.lower()
            elif key == TIMEOUT_HEADER:
                timeout_s = header_timeout_s(value)
        return header_length, encoding, timeout_s

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes, int | None, float | None]:
        """The (decompressed) body, the binary extension's header length and the caller's timeout, if sent."""
        header_length, encoding, timeout_s = self._headers(scope)
        message = await receive()
        body: bytes = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            size = len(body)
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    raise PayloadTooLarge(f"request body exceeds the limit of {self._max_body} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientGone
        if encoding in (b"gzip", b"deflate"):
            body = self._inflate(body, encoding)
        return body, header_length, timeout_s

    def _inflate(self, body: bytes, encoding: bytes) -> bytes:
        inflater = zlib.decompressobj(31 if encoding == b"gzip" else 15)
        try:
            out = inflater.decompress(body, self._max_body + 1)
        except zlib.error as exc:
            raise InvalidInput(f"body is not valid {encoding.decode()} data: {exc}") from None
        if len(out) > self._max_body:
            raise PayloadTooLarge(f"decompressed body exceeds the limit of {self._max_body} bytes")
        return out

    def _label(self, name: str) -> str:
        return name if name in self._dp.repository.names else UNKNOWN_MODEL

    # -- V2 ---------------------------------------------------------------------------------------
    async def _v2_model(self, scope: Scope, receive: Receive, send: Send, parts: list[str], method: str) -> None:
        if parts == ["stats"] and method == "GET":
            await self._v2_json(send, lambda: v2_json.dumps(self._dp.statistics()))
            return
        name, version, action = parts[0], None, ""
        rest = parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if len(rest) == 1:
            action = rest[0]
        elif rest:
            action = "?"
        if action == "infer" and method == "POST":
            await self._v2_infer(scope, receive, send, name, version)
        elif action == "" and method == "GET":
            await self._v2_json(send, lambda: v2_json.encode_model_metadata(self._dp.model_metadata(name, version)))
        elif action == "ready" and method == "GET":
            await self._v2_model_ready(send, name, version)
        elif action == "stats" and method == "GET":
            await self._v2_json(send, lambda: v2_json.dumps(self._dp.statistics(name, version)))
        elif action in ("infer", "ready", "", "stats"):
            await respond(send, 405, v2_json.encode_error(f"method {method} not allowed on {scope['path']}"))
        else:
            await respond(send, 404, v2_json.encode_error(f"no route for {method} {scope['path']}"))

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        started = time.perf_counter()
        status = "ok"
        try:
            body, header_length, timeout_s = await self._read(scope, receive)
            if header_length is None:
                request = v2_json.decode_request(body, self._max_elements)
            else:
                request = v2_binary.decode_request(body, header_length, self._max_elements)
            response = await self._dp.infer(name, version, request, timeout_s)
            binary = v2_binary.wants_binary(request)
            if binary is None:
                await respond(send, 200, v2_json.encode_response(response))
            else:
                payload, length = v2_binary.encode_response(response, binary)
                await respond(send, 200, payload, b"application/octet-stream",
                              [(b"inference-header-content-length", str(length).encode())])
        except ClientGone:
            status = "client_gone"
        except Exception as exc:
            code, status, message, extra = error_status(exc)
            await respond(send, code, v2_json.encode_error(message), extra=extra)
        finally:
            self._metrics.request(self._label(name), "v2-rest", status, time.perf_counter() - started)

    async def _v2_json(self, send: Send, build: Callable[[], bytes]) -> None:
        try:
            body = build()
        except Exception as exc:
            code, _, message, extra = error_status(exc)
            await respond(send, code, v2_json.encode_error(message), extra=extra)
            return
        await respond(send, 200, body)

    async def _v2_model_ready(self, send: Send, name: str, version: str | None) -> None:
        try:
            ready = self._dp.model_ready(name, version)
        except Exception as exc:
            code, _, message, extra = error_status(exc)
            await respond(send, code, v2_json.encode_error(message), extra=extra)
            return
        body: dict[str, object] = {"name": name, "ready": ready}
        reason = None if ready else self._dp.model_failure(name)
        if reason is not None:
            body["reason"] = reason
        await respond(send, 200 if ready else 503, v2_json.dumps(body))

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b'{"live":true}')

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        ready = self._dp.ready()
        await respond(send, 200 if ready else 503, b'{"ready":true}' if ready else b'{"ready":false}')

    async def _server_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, v2_json.encode_server_metadata(self._dp.server_metadata()))

    # -- KServe V1 ------------------------------------------------------------------------------
    async def _v1_list(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, v2_json.dumps({"models": self._dp.repository.names}))

    async def _v1_model(self, scope: Scope, receive: Receive, send: Send, rest: str, method: str) -> None:
        name, sep, verb = rest.partition(":")
        if sep and verb == "predict" and method == "POST":
            await self._v1_predict(scope, receive, send, name)
        elif not sep and "/" not in name and method == "GET":
            try:
                ready = self._dp.model_ready(name)
            except Exception as exc:
                code, _, message, extra = error_status(exc)
                await respond(send, code, kserve_v1.encode_error(message), extra=extra)
                return
            await respond(send, 200, kserve_v1.encode_model_status(name, ready))
        else:
            await respond(send, 404, kserve_v1.encode_error(f"no route for {method} {scope['path']}"))

    async def _v1_predict(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        started = time.perf_counter()
        status = "ok"
        try:
            handle = self._dp.model(name)
            body, _, timeout_s = await self._read(scope, receive)
            request = kserve_v1.decode_request(body, [i.name for i in handle.signature.inputs], self._max_elements)
            response = await self._dp.infer(name, None, request, timeout_s)
            await respond(send, 200, kserve_v1.encode_response(response))
        except ClientGone:
            status = "client_gone"
        except Exception as exc:
            code, status, message, extra = error_status(exc)
            await respond(send, code, kserve_v1.encode_error(message), extra=extra)
        finally:
            self._metrics.request(self._label(name), "kserve-v1", status, time.perf_counter() - started)

    # -- Seldon ---------------------------------------------------------------------------------
    async def _seldon(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = "ok"
        name = UNKNOWN_MODEL
        try:
            name = self._seldon_model(scope)
            handle = self._dp.model(name)
            body, _, timeout_s = await self._read(scope, receive)
            request, kind, meta = seldon.decode_request(body, [i.name for i in handle.signature.inputs],
                                                          self._max_elements)
            response = await self._dp.infer(name, None, request, timeout_s)
            await respond(send, 200, seldon.encode_response(response, kind, meta))
        except ClientGone:
            status = "client_gone"
        except Exception as exc:
            error = as_pier_error(exc)  # logged here if unexpected; error_status gets one of the tree
            code, status, _, extra = error_status(error)
            await respond(send, code, seldon.encode_error(error), extra=extra)
        finally:
            self._metrics.request(self._label(name), "seldon", status, time.perf_counter() - started)

    def _seldon_model(self, scope: Scope) -> str:
        """The model named by ``?model=``, else the only model served."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("model"):
            return str(query["model"][0])
        names = self._dp.repository.names
        if len(names) == 1:
            return names[0]
        raise InvalidInput(f"this server hosts several models {names}; name one with ?model=NAME")

    # -- the V2 model repository extension ----------------------------------------------------------
    async def _repository_api(self, scope: Scope, receive: Receive, send: Send, rest: str, method: str) -> None:
        """``index``, ``models/{name}/load``, ``models/{name}/unload``; all POST, bodies optional."""
        parts = rest.split("/")
        try:
            if method != "POST":
                await respond(send, 405, v2_json.encode_error(f"method {method} not allowed on {scope['path']}"))
                return
            body, _, _ = await self._read(scope, receive)
            doc = v2_json.loads(body) if body.strip() else {}  # tritonclient sends an empty body
            if type(doc) is not dict:
                raise InvalidInput("the request body must be a JSON object")
            if parts == ["index"]:
                listing = self._dp.repository_index(bool(doc.get("ready")))
                await respond(send, 200, v2_json.dumps(listing))
            elif len(parts) == 3 and parts[0] == "models" and parts[2] == "load":
                await self._dp.load_model(parts[1])
                await respond(send, 200, b"")
            elif len(parts) == 3 and parts[0] == "models" and parts[2] == "unload":
                self._dp.unload_model(parts[1])
                await respond(send, 200, b"")
            else:
                await respond(send, 404, v2_json.encode_error(f"no route for {method} {scope['path']}"))
        except ClientGone:
            return
        except Exception as exc:
            code, _, message, extra = error_status(exc)
            await respond(send, code, v2_json.encode_error(message), extra=extra)

    # -- MLflow scoring -------------------------------------------------------------------------
    async def _ping(self, scope: Scope, receive: Receive, send: Send) -> None:
        # MLflow's /ping: 200 once the model can answer (here: once the server is ready).
        ready = self._dp.ready()
        await respond(send, 200 if ready else 503, b"\n" if ready else b'{"ready":false}')

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        names = self._dp.repository.names
        if len(names) != 1:
            message = (f"this server hosts several models {names}; "
                       "post to /models/NAME/invocations instead")
            await respond(send, 400, mlflow_scoring.encode_error(400, message))
            return
        await self._score(scope, receive, send, names[0])

    async def _score(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        started = time.perf_counter()
        status = "ok"
        try:
            handle = self._dp.model(name)
            body, _, timeout_s = await self._read(scope, receive)
            content_type = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), "")
            request = mlflow_scoring.decode_request(body, content_type, [i.name for i in handle.signature.inputs],
                                                    self._max_elements)
            response = await self._dp.infer(name, None, request, timeout_s)
            await respond(send, 200, mlflow_scoring.encode_response(response))
        except ClientGone:
            status = "client_gone"
        except Exception as exc:
            code, status, message, extra = error_status(exc)
            await respond(send, code, mlflow_scoring.encode_error(code, message), extra=extra)
        finally:
            self._metrics.request(self._label(name), "mlflow", status, time.perf_counter() - started)

    # -- operations -----------------------------------------------------------------------------
    async def _metrics_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, self._metrics.render(), METRICS_CONTENT_TYPE.encode())

    def _docs(self) -> DocsAssets:
        # Imported on first use: the docs pull in FastAPI, ~0.2 s of every replica's cold start.
        if self._docs_assets is None:
            from modelpier.server.openapi import DocsAssets

            self._docs_assets = DocsAssets()
        return self._docs_assets

    async def _openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, self._docs().openapi_json())

    async def _swagger(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, self._docs().swagger_html(), b"text/html; charset=utf-8")

    async def _static(self, send: Send, name: str) -> None:
        asset = self._docs().static(name)
        if asset is None:
            await respond(send, 404, v2_json.encode_error(f"no static file {name!r}"))
            return
        body, content_type = asset
        await respond(send, 200, body, content_type, [(b"cache-control", b"public, max-age=86400")])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._on_startup()
                except Exception as exc:
                    log.error("start-up failed: %s", exc, exc_info=not isinstance(exc, PierError))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
