"""gRPC V2 through the gateway: ``inference.GRPCInferenceService`` on a port of its own.

A gRPC method path has no room for a deployment, so request metadata names it:
``x-pier-deployment: PROJECT/DEPLOYMENT``, or ``x-pier-deployment: NAME`` with ``x-pier-project:
PROJECT`` (project ``default`` when absent). This module is the gRPC transport only: it resolves the
deployment, checks the caller's token and the message size, then hands a ``Call`` (``protocol:
"grpc"``, the method path, the metadata, the message bytes) to the same ``Dispatcher`` as HTTP. So
one in-flight count, one set of counters, one cache and one passive health serve both protocols,
and every serving pattern applies to gRPC: header routes and sticky keys (read from the metadata),
weights, ``limits.maxInFlight``, the cold-start wait of a predictor scaled to zero, least-outstanding
balancing with a retry on another replica, and, for ``ModelInfer`` only (metadata and readiness
calls are not predictions), the prediction cache, shadow mirroring with answer comparison and the
prediction log. ``grpc_upstream`` forwards to the replica's gRPC address.

The ``Served`` answer becomes the response message and trailing metadata: ``x-pier-predictor``,
``x-pier-model-version``, ``x-pier-revision``, ``x-pier-replica``, ``x-request-id``, and
``x-pier-cache: hit|miss`` for deployments with a cache. Errors are status codes with a message:
missing or garbled deployment metadata → INVALID_ARGUMENT; unknown deployment → NOT_FOUND; routing
table not loaded yet, or no ready replica → UNAVAILABLE; ``auth.mode: token`` without a valid
``authorization: Bearer ...`` → UNAUTHENTICATED; a message over ``limits.maxBodyBytes`` →
RESOURCE_EXHAUSTED. The dispatcher's own refusals map by ``grpc_status`` (``limits.maxInFlight`` →
RESOURCE_EXHAUSTED, timeout → DEADLINE_EXCEEDED, ...); a replica's own error passes through with
its code and message.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from modelpier._lib.ids import new_id
from modelpier.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PierError,
    ServiceUnavailable,
    Unauthenticated,
    grpc_code,
)
from modelpier.gateway.dispatch import Call, Dispatcher, Served
from modelpier.gateway.grpc_status import answer_error
from modelpier.gateway.proxy import Headers
from modelpier.gateway.verifier import InvocationVerifier
from modelpier.spec.routing import DeploymentRoute, RoutingTable

log = logging.getLogger("modelpier.gateway.grpc")

SERVICE = "inference.GRPCInferenceService"
INFER = f"/{SERVICE}/ModelInfer"  # the one method that is a prediction
DEPLOYMENT_KEY = "x-pier-deployment"
PROJECT_KEY = "x-pier-project"
DEFAULT_PROJECT = "default"
_STREAMING = frozenset({"ModelStreamInfer"})  # Triton's bidirectional extension: no replica serves it
# Metadata the gRPC library sets per call (or refuses from callers), and the request id (the dispatcher sets it).
_RESERVED = frozenset({"user-agent", "content-type", "te", "host", "x-request-id"})
# Answer headers that are no trailing metadata (the body's marker), or that the gateway sets itself.
_NOT_TRAILING = frozenset({b"content-type", b"x-pier-predictor", b"x-pier-model-version", b"x-pier-revision",
                           b"x-pier-replica", b"x-request-id", b"x-pier-cache"})

Metadata = list[tuple[str, str | bytes]]


# -- pure decisions --------------------------------------------------------------------------------
def match_target(metadata: Mapping[str, str]) -> tuple[str, str]:
    """``(project, deployment)`` named by the request metadata; ``InvalidInput`` saying what to send."""
    named = metadata.get(DEPLOYMENT_KEY, "").strip()
    project = metadata.get(PROJECT_KEY, "").strip()
    if not named:
        raise InvalidInput(f"name the deployment in the request metadata: `{DEPLOYMENT_KEY}: PROJECT/DEPLOYMENT` "
                           f"(or `{DEPLOYMENT_KEY}: DEPLOYMENT` with `{PROJECT_KEY}: PROJECT`)")
    if "/" in named:
        first, _, deployment = named.partition("/")
        if not first or not deployment or "/" in deployment:
            raise InvalidInput(f"metadata {DEPLOYMENT_KEY}: {named!r} is not PROJECT/DEPLOYMENT")
        if project and project != first:
            raise InvalidInput(f"metadata {PROJECT_KEY}: {project!r} contradicts {DEPLOYMENT_KEY}: {named!r}")
        return first, deployment
    return project or DEFAULT_PROJECT, named


def metadata_lookup(metadata: Sequence[tuple[str, str | bytes]]) -> dict[str, str]:
    """Text metadata by lower-cased key; the first value of a repeated key wins, binary ones drop."""
    found: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, str):
            found.setdefault(key.lower(), value)
    return found


def forwarded_headers(metadata: Sequence[tuple[str, str | bytes]], *, drop_auth: bool) -> Headers:
    """The caller's metadata for the replica, as the ``Call``'s header pairs: pseudo and transport keys
    dropped, and the caller's token when the gateway checked it (replicas, and their logs, never see
    it). The dispatcher adds the request id."""
    dropped = _RESERVED | {"authorization"} if drop_auth else _RESERVED
    return [(k.lower().encode("latin-1"), v if isinstance(v, bytes) else v.encode("latin-1", "replace"))
            for k, v in metadata if not k.startswith((":", "grpc-")) and k.lower() not in dropped]


def served_metadata(served: Served, request_id: str) -> Metadata:
    """Trailing metadata for the caller: the replica's own (or the gateway's ``retry-after``), then who
    answered, as the HTTP transport's ``x-pier-*`` headers."""
    out: Metadata = [(k.decode("latin-1"), v if k.endswith(b"-bin") else v.decode("latin-1"))
                     for k, v in served.answer.headers if k not in _NOT_TRAILING and not k.startswith(b"grpc-")]
    out.append(("x-request-id", request_id))
    predictor = served.predictor
    if predictor is None:
        return out
    out.append(("x-pier-predictor", predictor.name))
    replica = served.replica
    version = replica.model_version if replica is not None else None
    if version is None and predictor.replicas:
        version = predictor.replicas[0].model_version
    if version:
        out.append(("x-pier-model-version", version))
    if replica is not None:
        out.append(("x-pier-revision", str(replica.revision)))
        out.append(("x-pier-replica", replica.replica_id))
    if served.cache is not None:
        out.append(("x-pier-cache", served.cache))
    return out


def bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


# -- I/O -----------------------------------------------------------------------------------------
class _Refusal(Exception):
    """Ends the call with a status code and message (and trailing metadata, when a predictor was chosen)."""

    def __init__(self, code: grpc.StatusCode, message: str, trailing: Sequence[tuple[str, str | bytes]] = ()
                 ) -> None:
        super().__init__(message)
        self.code, self.message, self.trailing = code, message, tuple(trailing)

    @classmethod
    def of(cls, error: PierError) -> _Refusal:
        """The gateway's own refusal: the code the error tree maps ``error`` to, as over HTTP its status."""
        return cls(grpc.StatusCode[grpc_code(error)], error.message)


class _Forwarder:
    """The generic handler: answers every unary method of the V2 service through the dispatcher.

    Duck-typed rather than a ``grpc.GenericRpcHandler`` subclass: the server only calls ``service``.
    """

    def __init__(self, dispatcher: Dispatcher, table_source: Callable[[], RoutingTable | None], *,
                 verifier: InvocationVerifier | None, id_factory: Callable[[], str]) -> None:
        self.dispatcher, self.table_source, self.verifier, self.ids = dispatcher, table_source, verifier, id_factory

    def service(self, details: Any) -> Any:
        service, _, name = str(details.method).lstrip("/").partition("/")
        if service != SERVICE or not name or name in _STREAMING:
            return None  # UNIMPLEMENTED, from the gRPC library
        # No (de)serializers: requests and responses stay bytes end to end.
        return grpc.unary_unary_rpc_method_handler(functools.partial(self.forward, str(details.method)))

    async def forward(self, method: str, request: bytes, context: Any) -> bytes | None:
        metadata = [(str(m[0]), m[1]) for m in (context.invocation_metadata() or ())]
        lookup = metadata_lookup(metadata)
        request_id = lookup.get("x-request-id") or self.ids()
        try:
            return await self._forward(method, request, context, metadata=metadata, lookup=lookup,
                                       request_id=request_id)
        except _Refusal as refusal:
            trailing = refusal.trailing or (("x-request-id", request_id),)
            context.set_trailing_metadata(trailing)
            await context.abort(refusal.code, refusal.message)
        except Exception:  # the caller gets an id to quote, never a traceback
            error_id = new_id(8)
            log.exception("gRPC request %s %s failed in the gateway (error id %s)", request_id, method, error_id)
            context.set_trailing_metadata((("x-request-id", request_id),))
            await context.abort(grpc.StatusCode.INTERNAL, f"the gateway failed (error id {error_id})")
        return None

    def _route(self, lookup: Mapping[str, str]) -> tuple[RoutingTable, DeploymentRoute]:
        try:
            project, deployment = match_target(lookup)
        except InvalidInput as exc:
            raise _Refusal.of(exc) from None
        table = self.table_source()
        if table is None:
            raise _Refusal.of(ServiceUnavailable(
                "the gateway has not loaded the routing table from the control plane yet"))
        route = table.get(project, deployment)
        if route is None:
            raise _Refusal.of(NotFound(f"no deployment {project}/{deployment}"))
        return table, route

    async def _check_token(self, table: RoutingTable, route: DeploymentRoute, lookup: Mapping[str, str]) -> None:
        if route.auth_mode != "token":
            return
        token = bearer(lookup.get("authorization"))
        try:
            if token is not None and self.verifier is not None and await self.verifier.verify(
                    route.project, route.deployment, token, epoch=table.auth_epoch):
                return
        except ServiceUnavailable as exc:  # the control plane is away: retry, not a false UNAUTHENTICATED
            raise _Refusal.of(exc) from exc
        raise _Refusal.of(Unauthenticated(
            f"{route.project}/{route.deployment} needs a valid project token or invocation key: "
            "send metadata `authorization: Bearer ...`"))

    async def _forward(self, method: str, request: bytes, context: Any, *,
                       metadata: Sequence[tuple[str, str | bytes]], lookup: Mapping[str, str],
                       request_id: str) -> bytes:
        table, route = self._route(lookup)
        if len(lookup) < len(metadata) and sum(k.lower() == "authorization" for k, _ in metadata) > 1:
            # As over HTTP (heads.py): one call, one identity.
            raise _Refusal.of(InvalidInput("the call has several authorization metadata entries; send exactly one"))
        await self._check_token(table, route, lookup)
        limit = route.policy.max_body_bytes
        if len(request) > limit:  # the spec's limits.maxBodyBytes, as HTTP's 413
            raise _Refusal.of(PayloadTooLarge(
                f"request message of {len(request)} bytes is over the {limit} bytes "
                f"{route.project}/{route.deployment} accepts (limits.maxBodyBytes)"))
        # The caller's own deadline, when sooner than the deployment's timeout, cancels this coroutine
        # (and with it the replica call): gRPC ends the call with DEADLINE_EXCEEDED itself.
        call = Call("POST", method, forwarded_headers(metadata, drop_auth=route.auth_mode == "token"), request,
                    request_id, protocol="grpc", prediction=method == INFER)
        served = await self.dispatcher.serve(route, call)
        trailing = served_metadata(served, request_id)
        error = answer_error(served.answer)
        if error is not None:
            raise _Refusal(*error, trailing)
        context.set_trailing_metadata(trailing)
        return served.answer.body


@dataclass(slots=True)
class GrpcGateway:
    """A running gRPC port of the gateway: ``port`` is the bound one (useful when asked for 0)."""

    server: Any  # grpc.aio.Server
    port: int

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuse new calls and let those in flight finish for ``grace_s``. The replica channels belong
        to the dispatcher's gRPC proxy and close with the gateway's other parts."""
        await self.server.stop(grace_s)


async def start_grpc_gateway(dispatcher: Dispatcher, table_source: Callable[[], RoutingTable | None], *,
                             host: str, port: int, verifier: InvocationVerifier | None,
                             id_factory: Callable[[], str] = lambda: new_id(8),
                             max_message_bytes: int = 64 * 1024 * 1024) -> GrpcGateway:
    """Start serving V2 gRPC on ``host:port`` in the running event loop, through ``dispatcher`` (the HTTP
    gateway's, so both protocols share its limits, counters, cache and health; it needs a ``grpc_proxy``,
    which ``compose.build_gateway`` gives it).

    ``table_source`` returns None until the first routing table arrived (every deployment is then
    UNAVAILABLE rather than NOT_FOUND). ``ServiceUnavailable`` when the port cannot be bound.
    """
    if dispatcher.grpc_proxy is None:
        raise ValueError("the dispatcher has no gRPC proxy to reach replicas with (Dispatcher(grpc_proxy=...))")
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        # A port another process holds must be an error, not silently shared (gRPC's default on Linux).
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((_Forwarder(dispatcher, table_source, verifier=verifier,
                                                id_factory=id_factory),))
    try:
        bound = int(server.add_insecure_port(f"{host}:{port}"))
    except RuntimeError as exc:
        bound = 0
        log.debug("binding %s:%d for gRPC failed: %s", host, port, exc)
    if bound == 0:
        with contextlib.suppress(Exception):
            await server.stop(None)
        raise ServiceUnavailable(f"the gateway cannot listen for gRPC on {host}:{port}: is the port in use? Choose "
                                 "another with `pier up --gateway-grpc-port` or `pier gateway --grpc-port` (setting "
                                 "gateway.grpc_port), or 0 to turn gRPC off",
                                 details={"host": host, "port": port})
    await server.start()
    log.info("gateway: V2 gRPC on %s:%d (deployment named by metadata %s)", host, bound, DEPLOYMENT_KEY)
    return GrpcGateway(server, bound)
