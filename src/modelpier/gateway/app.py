"""The gateway's HTTP transport: a raw ASGI app serving ``/{project}/{deployment}/...`` (under uvicorn).

The path after the deployment is forwarded unchanged to a replica, so every protocol the model
server speaks (V2 REST, KServe V1, Seldon) works through it. Here: resolve the deployment in the
routing table, check the caller (``auth.mode: token``) before reading the body, enforce the body
limit, then hand the request to the ``Dispatcher`` (predictor, limits, cache, replica, shadow) or,
for ``/{project}/{deployment}/async/...`` and ``Prefer: respond-async``, to the job queue (202 + job
id; ``GET /{project}/{deployment}/jobs/{id}`` answers its status and result). Also ``/healthz`` and
``/metrics`` (Prometheus text format).

Responses carry ``x-request-id`` (the caller's, when it sent a sane one, else a new one; the replica
sees the same), ``x-pier-predictor``, ``x-pier-model-version``, ``x-pier-revision``,
``x-pier-replica``, and ``x-pier-cache: hit|miss`` for deployments with a cache.

Why raw ASGI and not Starlette: the gateway's own work per request is a few dict lookups; a
framework's request objects and routing cost more than that (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from modelpier._lib.ids import new_id
from modelpier.errors import InvalidInput, NotFound, PayloadTooLarge, PierError, ServiceUnavailable, Unauthenticated
from modelpier.gateway.dispatch import JSON, Call, Dispatcher, Served, TableSource, error_answer
from modelpier.gateway.proxy import HOP_BY_HOP, Answer, Headers
from modelpier.gateway.verifier import InvocationVerifier
from modelpier.spec.routing import DeploymentRoute

log = logging.getLogger("modelpier.gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Named = dict[bytes, bytes]  # request headers by (lower-cased) name, for the ones the gateway reads

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Headers the gateway sets on the way back; the replica's copies (and its date/server) are dropped.
_OURS = frozenset({b"x-pier-predictor", b"x-pier-revision", b"x-pier-replica", b"x-pier-model-version",
                   b"x-request-id", b"x-pier-cache", b"date", b"server", b"content-length"})
# Not forwarded: ours to set, or meant for the gateway only.
_CONSUMED = frozenset({b"x-request-id", b"prefer", b"x-callback-url", b"host", b"content-length"}) | HOP_BY_HOP
METRICS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Jobs(Protocol):
    """Asynchronous inference (``gateway.async_jobs``)."""

    async def submit(self, route: DeploymentRoute, call: Call, callback_url: str | None) -> dict[str, Any]: ...

    async def status(self, project: str, deployment: str, job_id: str) -> dict[str, Any] | None: ...


class SyncedTableSource(TableSource, Protocol):
    @property
    def synced(self) -> bool: ...


class GatewayApp:
    def __init__(self, tables: SyncedTableSource, dispatcher: Dispatcher, *,
                 verifier: InvocationVerifier | None = None, jobs: Jobs | None = None,
                 id_factory: Callable[[], str] = lambda: new_id(8),
                 health: Callable[[], dict[str, Any]] = dict,
                 on_startup: Callable[[], Awaitable[None]] | None = None,
                 on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
        self.tables, self.dispatcher, self.verifier, self.jobs = tables, dispatcher, verifier, jobs
        self.ids = id_factory
        self._health = health
        self._on_startup, self._on_shutdown = on_startup, on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- routing ----------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == "/healthz":
            body = {"status": "ok", "deployments": len(self.tables.get().deployments), **self._health()}
            await _send(send, 200, [(b"content-type", JSON)], orjson.dumps(body))
            return
        if path == "/metrics":
            await _send(send, 200, [(b"content-type", METRICS_CONTENT_TYPE)], self.dispatcher.stats.prometheus())
            return
        headers: Headers = scope["headers"]
        named = dict(headers)  # one pass for the few headers the gateway reads itself
        request_id = self._request_id(named)
        answer, served = await self._deployment(scope, receive, headers, named, request_id)
        await _send(send, answer.status, _reply_headers(answer, served, request_id), answer.body)

    def _resolve(self, path: str) -> tuple[DeploymentRoute, str] | Answer:
        """The deployment a path names and the rest of the path, or the error answer."""
        parts = path.split("/", 3)
        if len(parts) < 4 or not parts[1] or not parts[2]:
            return error_answer(NotFound(f"no route {path!r}: deployments are served at "
                                         "/{project}/{deployment}/..."))
        project, deployment, rest = parts[1], parts[2], parts[3]
        route = self.tables.get().get(project, deployment) if self.tables.synced else None
        if route is not None:
            return route, rest
        if not self.tables.synced:
            return error_answer(ServiceUnavailable(
                "the gateway has not loaded the routing table from the control plane yet"), retry_after=1)
        return error_answer(NotFound(f"no deployment {project}/{deployment}",
                                     details={"project": project, "deployment": deployment}))

    async def _deployment(self, scope: Scope, receive: Receive, headers: Headers, named: Named,
                          request_id: str) -> tuple[Answer, Served | None]:
        resolved = self._resolve(scope["path"])
        if isinstance(resolved, Answer):
            return resolved, None
        route, rest = resolved
        refusal = await self._refusal(route, named)  # before any body is read or model runs
        if refusal is not None:
            return refusal, None
        try:
            body = await _read_body(receive, named, route.policy.max_body_bytes)
        except PierError as exc:
            return error_answer(exc), None
        forwarded = [(k, v) for k, v in headers if k not in _CONSUMED and not (
            k == b"authorization" and route.auth_mode == "token")]  # the caller's token stops here
        query: bytes = scope["query_string"]
        method: str = scope["method"]
        respond_async = rest.startswith("async/") or _prefers_async(named)
        rest = rest.removeprefix("async/")
        call = Call(method, "/" + rest + ("?" + query.decode("latin-1") if query else ""), forwarded, body,
                    request_id)
        if rest.startswith("jobs/") and self.jobs is not None:
            return await self._job_status(route, method, rest.removeprefix("jobs/")), None
        if respond_async:
            return await self._submit(route, call, named), None
        served = await self.dispatcher.serve(route, call)
        return served.answer, served

    async def _refusal(self, route: DeploymentRoute, named: Named) -> Answer | None:
        """``auth.mode: token``: a project token or this deployment's invocation key, else 401; fail closed."""
        if route.auth_mode != "token":
            return None
        token = _bearer(named)
        if token is not None and self.verifier is not None and await self.verifier.verify(
                route.project, route.deployment, token, epoch=self.tables.get().auth_epoch):
            return None
        return error_answer(Unauthenticated(f"{route.project}/{route.deployment} needs a valid project token or "
                                            "invocation key: send `Authorization: Bearer ...`"))

    # -- asynchronous jobs ------------------------------------------------------------------------
    async def _submit(self, route: DeploymentRoute, call: Call, named: Named) -> Answer:
        if self.jobs is None:
            return error_answer(ServiceUnavailable("this gateway runs without a job queue"))
        callback = _header(named, b"x-callback-url")
        if callback is not None:
            parsed = urlsplit(callback)
            if parsed.scheme not in {"http", "https"} or not parsed.netloc:
                return error_answer(InvalidInput(f"x-callback-url {callback!r} is not an http(s) URL"))
        try:
            job = await self.jobs.submit(route, call, callback)
        except PierError as exc:
            return error_answer(exc)
        location = f"/{route.project}/{route.deployment}/jobs/{job['id']}"
        return Answer(202, [(b"content-type", JSON), (b"location", location.encode())],
                      orjson.dumps({**job, "statusUrl": location}))

    async def _job_status(self, route: DeploymentRoute, method: str, job_id: str) -> Answer:
        if method != "GET":
            return error_answer(InvalidInput(f"{method} on a job: only GET .../jobs/ID is served"))
        assert self.jobs is not None
        job = await self.jobs.status(route.project, route.deployment, job_id)
        if job is None:
            return error_answer(NotFound(f"no job {job_id!r} in {route.project}/{route.deployment}"))
        return Answer(200, [(b"content-type", JSON)], orjson.dumps(job))

    # -- plumbing ---------------------------------------------------------------------------------
    def _request_id(self, named: Named) -> str:
        sent = _header(named, b"x-request-id")
        return sent if sent is not None and _SANE_ID.match(sent) else self.ids()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._on_startup is not None:
                        await self._on_startup()
                except Exception as exc:
                    log.error("gateway start-up failed: %s", exc, exc_info=not isinstance(exc, PierError))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with contextlib.suppress(Exception):
                    await self.dispatcher.drain()
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(named: Named, name: bytes) -> str | None:
    value = named.get(name)
    return None if value is None else value.decode("latin-1")


def _bearer(named: Named) -> str | None:
    scheme, _, value = (_header(named, b"authorization") or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def _prefers_async(named: Named) -> bool:
    prefer = _header(named, b"prefer")
    return prefer is not None and "respond-async" in (p.strip().lower() for p in prefer.split(","))


async def _read_body(receive: Receive, named: Named, limit: int) -> bytes:
    """The whole request body; ``PayloadTooLarge`` as soon as it is known to exceed ``limit``."""
    declared = _header(named, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over this deployment's limit of {limit} "
                              "(limits.maxBodyBytes)")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError  # the caller left: nothing to answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over this deployment's limit of {limit} bytes (limits.maxBodyBytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _reply_headers(answer: Answer, served: Served | None, request_id: str) -> Headers:
    out = [(k, v) for k, v in answer.headers if k.lower() not in _OURS]
    out.append((b"x-request-id", request_id.encode("latin-1")))
    if served is not None and served.predictor is not None:
        out.append((b"x-pier-predictor", served.predictor.name.encode()))
        replica = served.replica
        version = replica.model_version if replica is not None else None
        if version is None and served.predictor.replicas:
            version = served.predictor.replicas[0].model_version
        if version:
            out.append((b"x-pier-model-version", version.encode()))
        if replica is not None:
            out.append((b"x-pier-revision", str(replica.revision).encode()))
            out.append((b"x-pier-replica", replica.replica_id.encode()))
        if served.cache is not None:
            out.append((b"x-pier-cache", served.cache.encode()))
    return out


async def _send(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
