"""Composition root of the gateway: an ASGI app serving ``/{project}/{deployment}/...``.

The path after the deployment is forwarded unchanged to a ready replica, so every protocol the
model server speaks (V2 REST, KServe V1, Seldon) works through it. The routing table comes from
``table_source`` (the reconciler publishes it; in ``pier up`` both share a process), never from
an import of the control plane. Responses carry ``x-pier-predictor``, ``x-pier-revision`` and
``x-request-id``; a request that failed to reach a replica before it answered is retried once on
another replica.
"""

from __future__ import annotations

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
from modelpier.errors import NotFound, PayloadTooLarge, PierError, ServiceUnavailable
from modelpier.gateway.proxy import ReplicaProxy, Retryable, Upstream, UpstreamTimeout, forwarded_headers
from modelpier.gateway.routing import match_predictor, pick_replica
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable

log = logging.getLogger("modelpier.gateway")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_ATTEMPTS = 2  # the first replica, and one other when the first failed before answering


def _error(error: PierError, status: int, request_id: str, *, retry_after: int | None = None) -> Response:
    headers = {"x-request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return JSONResponse(error.to_dict(), status_code=status, headers=headers)


class _Gateway:
    def __init__(self, table_source: Callable[[], RoutingTable], proxy: ReplicaProxy, rand: Callable[[], float],
                 id_factory: Callable[[], str], max_body_bytes: int) -> None:
        self.table_source, self.proxy, self.rand, self.ids = table_source, proxy, rand, id_factory
        self.max_body_bytes = max_body_bytes
        self.outstanding: Counter[str] = Counter()

    async def forward(self, request: Request) -> Response:
        project, deployment = request.path_params["project"], request.path_params["deployment"]
        request_id = request.headers.get("x-request-id") or self.ids()
        route = self.table_source().get(project, deployment)
        if route is None:
            return _error(NotFound(f"no deployment {project}/{deployment}",
                                   details={"project": project, "deployment": deployment}), 404, request_id)
        predictor = match_predictor(route, self.rand())
        if predictor is None:
            return _error(ServiceUnavailable(f"deployment {project}/{deployment} has no ready replica yet",
                                             details={"revision": route.revision}), 503, request_id, retry_after=1)
        body = await request.body()
        if len(body) > self.max_body_bytes:
            return _error(PayloadTooLarge(f"request body over {self.max_body_bytes} bytes"), 413, request_id)
        headers = [(k, v) for k, v in forwarded_headers(request.headers.items(), request=True)
                   if k.lower() != "x-request-id"]
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
        async def finish() -> None:
            await upstream.close()
            self._done(replica.replica_id)

        response = StreamingResponse(upstream.body(), status_code=upstream.status, background=BackgroundTask(finish))
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


def build_gateway(table_source: Callable[[], RoutingTable], *, proxy: ReplicaProxy | None = None,
                  rand: Callable[[], float] = random.random, id_factory: Callable[[], str] = lambda: new_id(8),
                  max_body_bytes: int = 64 * 1024 * 1024) -> Starlette:
    """The gateway app. ``table_source`` is called per request: it must be cheap (a reference read)."""
    proxy = proxy or ReplicaProxy()
    gateway = _Gateway(table_source, proxy, rand, id_factory, max_body_bytes)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await proxy.aclose()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "deployments": len(table_source().deployments)})

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{project}/{deployment}/{rest:path}", gateway.forward, methods=_METHODS),
    ], lifespan=lifespan)
