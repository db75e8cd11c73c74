"""The gateway's request handling: ``/{project}/{deployment}/...``, ``/healthz`` and ``/metrics``.

The path after the deployment is forwarded unchanged to a replica, so every protocol the model
server speaks (V2 REST, KServe V1, Seldon) works through it. ``admit`` resolves the deployment in
the routing table and refuses a declared body over the limit before the body is read;
``check_caller`` checks the caller (``auth.mode: token``; the HTTP server does so before reading the
body); ``respond`` hands the request to the
``Dispatcher`` (predictor, limits, cache, replica, shadow) or, for ``/{project}/{deployment}/async/...``
and ``Prefer: respond-async``, to the job queue (202 + job id; ``GET /{project}/{deployment}/jobs/{id}``
answers its status and result). ``/metrics`` is the Prometheus text format.

Responses carry ``x-request-id`` (the caller's, when it sent a sane one, else a new one; the replica
sees the same), ``x-pier-predictor``, ``x-pier-model-version``, ``x-pier-revision``,
``x-pier-replica``, and ``x-pier-cache: hit|miss`` for deployments with a cache.

Why no web framework: the gateway's own work per request is a few dict lookups; a framework's
request objects and routing cost more than that (docs/benchmarks.md). The gateway process serves
this with its own HTTP/1.1 server (``http1.py``); the ASGI entry point serves tests and embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from modelpier._lib.ids import fast_id
from modelpier.errors import InvalidInput, NotFound, PayloadTooLarge, PierError, ServiceUnavailable, Unauthenticated
from modelpier.gateway.dispatch import JSON, Call, Dispatcher, Served, TableSource, error_answer
from modelpier.gateway.heads import check_head
from modelpier.gateway.proxy import HOP_BY_HOP, Answer, Headers
from modelpier.gateway.verifier import InvocationVerifier
from modelpier.spec.routing import DeploymentRoute

log = logging.getLogger("modelpier.gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Named = dict[bytes, bytes]  # request headers by (lower-cased) name, for the ones the gateway reads

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
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


@dataclass(slots=True)
class Admitted:
    """A request for a deployment whose headers passed: what ``GatewayApp.respond`` needs besides the body."""

    route: DeploymentRoute
    rest: str  # the raw path after /{project}/{deployment}/
    method: str
    query: bytes
    headers: Headers
    named: Named
    request_id: str

    @property
    def limit(self) -> int:
        """The most body bytes to read (``limits.maxBodyBytes``)."""
        return self.route.policy.max_body_bytes

    def too_large(self, size: int | None = None) -> Answer:
        """413 for a body over the limit: ``size`` when known up front, else found while reading."""
        limit = self.limit
        over = f"of {size} bytes " if size is not None else ""
        return _final(error_answer(PayloadTooLarge(
            f"request body {over}is over this deployment's limit of {limit} bytes (limits.maxBodyBytes)")),
            None, self.request_id)


class GatewayApp:
    """The gateway's request handling, apart from the connection it arrived on.

    Two steps, so a transport can refuse before reading a body: ``admit`` when the request line and
    headers are in (health and metrics answered at once; an unknown deployment or a declared body
    over the limit refused), then ``respond`` with the body. ``http1.GatewayHttpServer`` drives them
    in the gateway process; ``__call__`` is the same as an ASGI app (tests, embedding).
    """

    def __init__(self, tables: SyncedTableSource, dispatcher: Dispatcher, *,
                 verifier: InvocationVerifier | None = None, jobs: Jobs | None = None,
                 id_factory: Callable[[], str] = fast_id,
                 health: Callable[[], dict[str, Any]] = dict,
                 on_startup: Callable[[], Awaitable[None]] | None = None,
                 on_shutdown: Callable[[], Awaitable[None]] | None = None,
                 metrics_token: str | None = None) -> None:
        self.tables, self.dispatcher, self.verifier, self.jobs = tables, dispatcher, verifier, jobs
        # gateway.metrics_token: /metrics names every project's deployments, so it may need a bearer token.
        self._metrics_token = None if metrics_token is None else metrics_token.encode()
        self.ids = id_factory
        self._health = health
        self._on_startup, self._on_shutdown = on_startup, on_shutdown

    # -- life cycle -------------------------------------------------------------------------------
    async def startup(self) -> None:
        if self._on_startup is not None:
            await self._on_startup()

    async def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            await self.dispatcher.drain()
        if self._on_shutdown is not None:
            await self._on_shutdown()

    # -- the two steps ----------------------------------------------------------------------------
    def admit(self, method: str, path: str, query: bytes, headers: Headers) -> Admitted | Answer:
        """The request's deployment, or the whole answer when none is needed or the request is refused.

        ``path`` is the raw request path (no query); an ``Answer`` returned here is final (headers
        included) and the body, if any, need not be read.
        """
        if path == "/healthz":
            body = {"status": "ok", "deployments": len(self.tables.get().deployments), **self._health()}
            return Answer(200, [(b"content-type", JSON)], orjson.dumps(body))
        if path == "/metrics":
            return self._metrics(headers)
        named = dict(headers)  # one pass for the few headers the gateway reads itself
        sent = named.get(b"x-request-id")
        request_id = sent.decode("latin-1") if sent is not None and _SANE_ID.match(sent) else self.ids()
        if len(named) != len(headers) or b"transfer-encoding" in named:  # a repeated name, or a coding
            refused = check_head(headers)
            if refused is not None:
                return _final(error_answer(refused), None, request_id)
        resolved = self._resolve(path)
        if isinstance(resolved, Answer):
            return _final(resolved, None, request_id)
        route, rest = resolved
        admitted = Admitted(route, rest, method, query, headers, named, request_id)
        declared = named.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > route.policy.max_body_bytes:
            return admitted.too_large(int(declared))
        return admitted

    def _metrics(self, headers: Headers) -> Answer:
        expected = self._metrics_token
        if expected is not None:
            sent = [v for k, v in headers if k == b"authorization"]
            scheme, _, token = sent[0].strip().partition(b" ") if len(sent) == 1 else (b"", b"", b"")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), expected):
                return error_answer(Unauthenticated(
                    "this gateway's /metrics needs its scrape token: send `Authorization: Bearer ...` "
                    "(gateway.metrics_token)"))
        return Answer(200, [(b"content-type", METRICS_CONTENT_TYPE)], self.dispatcher.stats.prometheus())

    async def check_caller(self, admitted: Admitted) -> Answer | None:
        """``auth.mode: token``: None when the caller may go on, else the final 401. A transport calls it
        before reading the body (``http1`` does); ``respond`` calls it unless told it was done."""
        refusal = await self._refusal(admitted.route, admitted.named)
        return None if refusal is None else _final(refusal, None, admitted.request_id)

    async def respond(self, admitted: Admitted, body: bytes, *, caller_checked: bool = False) -> Answer:
        """The final answer to an admitted request: caller checked, then a job or the dispatcher."""
        route, named, request_id = admitted.route, admitted.named, admitted.request_id
        if not caller_checked:
            refusal = await self.check_caller(admitted)  # before any model runs
            if refusal is not None:
                return refusal
        token_checked = route.auth_mode == "token"
        forwarded = [(k, v) for k, v in admitted.headers if k not in _CONSUMED and not (
            token_checked and k == b"authorization")]  # the caller's token stops here
        query, method, rest = admitted.query, admitted.method, admitted.rest
        respond_async = rest.startswith("async/") or _prefers_async(named)
        rest = rest.removeprefix("async/")
        call = Call(method, "/" + rest + ("?" + query.decode("latin-1") if query else ""), forwarded, body,
                    request_id)
        if rest.startswith("jobs/") and self.jobs is not None:
            return _final(await self._job_status(route, method, rest.removeprefix("jobs/")), None, request_id)
        if respond_async:
            return _final(await self._submit(route, call, named), None, request_id)
        served = await self.dispatcher.serve(route, call)
        return _final(served.answer, served, request_id)

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

    async def _refusal(self, route: DeploymentRoute, named: Named) -> Answer | None:
        """``auth.mode: token``: a project token or this deployment's invocation key, else 401; fail closed."""
        if route.auth_mode != "token":
            return None
        token = _bearer(named)
        try:
            if token is not None and self.verifier is not None and await self.verifier.verify(
                    route.project, route.deployment, token, epoch=self.tables.get().auth_epoch):
                return None
        except ServiceUnavailable as exc:  # the control plane is away: 503 and when to retry, not a false 401
            return error_answer(exc, retry_after=int(exc.details.get("retry_after_s", 1)))
        return error_answer(Unauthenticated(f"{route.project}/{route.deployment} needs a valid project token or "
                                            "invocation key: send `Authorization: Bearer ...`"))

    # -- asynchronous jobs ------------------------------------------------------------------------
    async def _submit(self, route: DeploymentRoute, call: Call, named: Named) -> Answer:
        if self.jobs is None:
            return error_answer(ServiceUnavailable("this gateway runs without a job queue"))
        problem = job_body_problem(call.method, call.body, _header(named, b"content-type"),
                                   binary=named.get(b"inference-header-content-length") is not None)
        if problem is not None:  # refused now: a queued job would only fail later, out of the caller's sight
            return error_answer(InvalidInput(f"asynchronous request refused, nothing was queued: {problem}"))
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

    # -- ASGI -------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._asgi_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _asgi_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        admitted = self.admit(scope["method"], raw.partition(b"?")[0].decode("latin-1"), scope["query_string"],
                              scope["headers"])
        if isinstance(admitted, Answer):
            answer = admitted
        elif (refusal := await self.check_caller(admitted)) is not None:
            answer = refusal
        else:
            body = await _read_body(receive, admitted.limit)
            answer = admitted.too_large() if body is None else await self.respond(admitted, body,
                                                                                  caller_checked=True)
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())]})
        await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("gateway start-up failed: %s", exc, exc_info=not isinstance(exc, PierError))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(named: Named, name: bytes) -> str | None:
    value = named.get(name)
    return None if value is None else value.decode("latin-1")


def _bearer(named: Named) -> str | None:
    scheme, _, value = (_header(named, b"authorization") or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def job_body_problem(method: str, body: bytes, content_type: str | None, *, binary: bool = False) -> str | None:
    """Why a body cannot become a job, or None. An inference job needs a body, and one the replicas read as
    JSON (V2, KServe and Seldon REST; also curl's default form type, which they read as JSON too) must parse.
    Binary tensor data (``Inference-Header-Content-Length``, ``application/octet-stream``) is the replica's
    to judge."""
    if method != "POST":
        return None
    if not body.strip():
        return "the request body is empty (send the inference request, e.g. -d @req.json with a file that exists)"
    media = (content_type or "").partition(";")[0].strip().lower()
    if binary or media == "application/octet-stream":
        return None
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"the request body is not valid JSON ({exc})"
    return None


def _prefers_async(named: Named) -> bool:
    prefer = _header(named, b"prefer")
    return prefer is not None and "respond-async" in (p.strip().lower() for p in prefer.split(","))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole ASGI request body; None as soon as it is known to exceed ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError  # the caller left: nothing to answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _final(answer: Answer, served: Served | None, request_id: str) -> Answer:
    """The answer with the gateway's headers: the request id, and who answered."""
    out = [(k, v) for k, v in answer.headers if k not in _OURS]
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
    return Answer(answer.status, out, answer.body)
