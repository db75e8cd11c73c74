"""Composition root of the gateway: an ASGI app serving ``/{project}/{deployment}/...``.

The path after the deployment is forwarded unchanged to a ready replica, so every protocol the
model server speaks (V2 REST, KServe V1, Seldon) works through it. The routing table comes from
``table_source``: in its own process (``pier gateway``) a ``RoutingTableClient`` that polls the
control plane over HTTP and keeps the last table while the control plane is away; in tests, any
callable. Never from an import of the control plane. Responses carry ``x-pier-predictor``, ``x-pier-revision`` and
``x-request-id``; a request that failed before the client was sent anything (the replica was
unreachable, reset the connection, or died mid-way through a small response) is retried once on
another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelpier._lib.ids import new_id
from modelpier.errors import NotFound, PayloadTooLarge, PierError, ServiceUnavailable, Unauthenticated
from modelpier.gateway.proxy import ReplicaProxy, Retryable, Upstream, UpstreamTimeout, forwarded_headers
from modelpier.gateway.routing import match_predictor, pick_replica
from modelpier.gateway.table_client import RoutingTableClient
from modelpier.gateway.verifier import InvocationVerifier
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable

log = logging.getLogger("modelpier.gateway")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_ATTEMPTS = 2  # the first replica, and one other when the first failed before answering


def _error(error: PierError, status: int, request_id: str, *, retry_after: int | None = None) -> Response:
    headers = {"x-request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return JSONResponse(error.to_dict(), status_code=status, headers=headers)


def _unknown(project: str, deployment: str, request_id: str, *, synced: bool) -> Response:
    if not synced:
        return _error(ServiceUnavailable("the gateway has not loaded the routing table from the control plane yet"),
                      503, request_id, retry_after=1)
    return _error(NotFound(f"no deployment {project}/{deployment}",
                           details={"project": project, "deployment": deployment}), 404, request_id)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class _Gateway:
    def __init__(self, table_source: Callable[[], RoutingTable | None], proxy: ReplicaProxy,
                 rand: Callable[[], float], id_factory: Callable[[], str], max_body_bytes: int, *,
                 verifier: InvocationVerifier | None) -> None:
        # ``table_source`` returns None until a table arrived: every deployment is then unknown *yet*.
        self.table_source, self.proxy, self.rand, self.ids = table_source, proxy, rand, id_factory
        self.max_body_bytes = max_body_bytes
        self.verifier = verifier
        self.outstanding: Counter[str] = Counter()

    async def _refusal(self, route: DeploymentRoute, request: Request, request_id: str) -> Response | None:
        """``auth.mode: token``: a project token or this deployment's invocation key, else 401; fail closed."""
        if route.auth_mode != "token":
            return None
        token = _bearer(request)
        if token is not None and self.verifier is not None \
                and await self.verifier.verify(route.project, route.deployment, token):
            return None
        return _error(Unauthenticated(f"{route.project}/{route.deployment} needs a valid project token or "
                                      "invocation key: send `Authorization: Bearer ...`"), 401, request_id)

    async def forward(self, request: Request) -> Response:
        project, deployment = request.path_params["project"], request.path_params["deployment"]
        request_id = request.headers.get("x-request-id") or self.ids()
        table = self.table_source()
        route = table.get(project, deployment) if table is not None else None
        if route is None:
            return _unknown(project, deployment, request_id, synced=table is not None)
        refusal = await self._refusal(route, request, request_id)  # before any body is read or model runs
        predictor = match_predictor(route, self.rand()) if refusal is None else None
        if refusal is not None or predictor is None:
            return refusal or _error(ServiceUnavailable(
                f"deployment {project}/{deployment} has no ready replica yet", details={"revision": route.revision}),
                503, request_id, retry_after=1)
        guarded = route.auth_mode == "token"
        body = await request.body()
        if len(body) > self.max_body_bytes:
            return _error(PayloadTooLarge(f"request body over {self.max_body_bytes} bytes"), 413, request_id)
        # The caller's token stops here: replicas (and their logs) never see it.
        dropped = {"x-request-id", "authorization"} if guarded else {"x-request-id"}
        headers = [(k, v) for k, v in forwarded_headers(request.headers.items(), request=True)
                   if k.lower() not in dropped]
        headers += [("x-request-id", request_id), ("x-forwarded-prefix", f"/{project}/{deployment}")]
        query = request.url.query
        path = "/" + request.path_params["rest"] + (f"?{query}" if query else "")
        tried: list[str] = []
        failure = ""
        for _ in range(_ATTEMPTS):
            replica = pick_replica(predictor.replicas, self.outstanding, self.rand(), exclude=tried)
            if replica is None:
                break
            tried.append(replica.replica_id)
            self.outstanding[replica.replica_id] += 1
            try:
                upstream = await self.proxy.send(request.method, f"{replica.url}{path}", headers, body,
                                                  timeout_s=route.timeout_s)
            except Retryable as exc:
                self._done(replica.replica_id)
                failure = f"replica {replica.replica_id} failed before answering ({exc})"
                log.info("%s; request %s %s", failure, request_id, "retrying" if len(tried) < _ATTEMPTS else "")
                continue
            except UpstreamTimeout as exc:
                self._done(replica.replica_id)
                return JSONResponse({"error": {"code": "gateway_timeout", "message": f"replica {replica.replica_id}"
                                               f" of {project}/{deployment}: {exc}"}}, status_code=504,
                                    headers={"x-request-id": request_id})
            return self._respond(upstream, route, predictor, replica, request_id)
        return _error(ServiceUnavailable(f"no replica of {project}/{deployment} answered: {failure}"), 503,
                      request_id, retry_after=1)

    def _respond(self, upstream: Upstream, route: DeploymentRoute, predictor: PredictorRoute,
                 replica: ReplicaEndpoint, request_id: str) -> Response:
        response: Response
        if upstream.content is not None:
            self._done(replica.replica_id)
            response = Response(upstream.content, status_code=upstream.status)
        else:
            async def finish() -> None:
                await upstream.close()
                self._done(replica.replica_id)

            response = StreamingResponse(upstream.body(), status_code=upstream.status,
                                         background=BackgroundTask(finish))
        # date and server are the gateway's own (uvicorn adds them); x-pier-* and the id are set here.
        ours = {"x-pier-predictor", "x-pier-revision", "x-pier-replica", "x-request-id", "date", "server"}
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers
                                if k.lower() not in ours] + [
            (b"x-pier-predictor", predictor.name.encode()), (b"x-pier-revision", str(replica.revision).encode()),
            (b"x-pier-replica", replica.replica_id.encode()), (b"x-request-id", request_id.encode("latin-1"))]
        return response

    def _done(self, replica_id: str) -> None:
        self.outstanding[replica_id] -= 1
        if self.outstanding[replica_id] <= 0:
            del self.outstanding[replica_id]


def build_gateway(table_source: Callable[[], RoutingTable] | RoutingTableClient, *,
                  proxy: ReplicaProxy | None = None, rand: Callable[[], float] = random.random,
                  id_factory: Callable[[], str] = lambda: new_id(8),
                  max_body_bytes: int = 64 * 1024 * 1024, verifier: InvocationVerifier | None = None) -> Starlette:
    """The gateway app. A ``RoutingTableClient`` is polled by the app while it runs (started and
    stopped with its lifespan); a plain callable is called per request and must be cheap."""
    proxy = proxy or ReplicaProxy()
    client: RoutingTableClient | None = None
    source: Callable[[], RoutingTable]
    if isinstance(table_source, RoutingTableClient):
        client, source = table_source, table_source.get
    else:
        source = table_source
    polled = client
    gateway = _Gateway((lambda: polled.get() if polled.synced else None) if polled is not None else source,
                       proxy, rand, id_factory, max_body_bytes, verifier=verifier)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        polling = asyncio.create_task(client.run(), name="routing table") if client is not None else None
        try:
            yield
        finally:
            if polling is not None and client is not None:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
                await client.aclose()
            await proxy.aclose()
            if verifier is not None:
                await verifier.aclose()

    async def healthz(_: Request) -> Response:
        body: dict[str, object] = {"status": "ok", "deployments": len(source().deployments)}
        if client is not None:
            body["routing"] = client.describe()
        return JSONResponse(body)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{project}/{deployment}/{rest:path}", gateway.forward, methods=_METHODS),
    ], lifespan=lifespan)
