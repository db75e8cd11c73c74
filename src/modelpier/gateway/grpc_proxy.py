"""gRPC V2 through the gateway: ``inference.GRPCInferenceService`` on a port of its own.

A gRPC method path has no room for a deployment, so request metadata names it:
``x-pier-deployment: PROJECT/DEPLOYMENT``, or ``x-pier-deployment: NAME`` with ``x-pier-project:
PROJECT`` (project ``default`` when absent). Every unary method of the service is forwarded as raw
bytes (the gateway decodes no protobuf) to the replica's gRPC address (``ReplicaEndpoint.grpc_url``)
over one ``grpc.aio`` channel per address, reused across requests and closed once the replica has
left the routing table. Predictor and replica are chosen by the pure functions of ``routing.py``,
as for HTTP: header routes and sticky keys read the metadata, the replica with the fewest
outstanding requests serves. Trailing metadata says ``x-pier-predictor``, ``x-pier-model-version``,
``x-pier-revision``, ``x-pier-replica`` and ``x-request-id``.

Errors are status codes with a message: missing or garbled deployment metadata → INVALID_ARGUMENT;
unknown deployment → NOT_FOUND; routing table not loaded yet, or no ready replica → UNAVAILABLE;
``auth.mode: token`` without a valid ``authorization: Bearer ...`` → UNAUTHENTICATED; a message over
the deployment's ``limits.maxBodyBytes`` → RESOURCE_EXHAUSTED; no answer in
time (the deployment's request timeout, or the caller's deadline if sooner) → DEADLINE_EXCEEDED. A
replica's own error (bad input, unknown model) passes through with its code and message. A replica
that answers UNAVAILABLE (unreachable, or still loading) is retried once on another replica: an
inference has no side effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from modelpier._lib.ids import new_id
from modelpier.errors import InvalidInput, ServiceUnavailable
from modelpier.gateway.routing import choose_predictor, pick_replica
from modelpier.gateway.verifier import InvocationVerifier
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable

log = logging.getLogger("modelpier.gateway.grpc")

SERVICE = "inference.GRPCInferenceService"
DEPLOYMENT_KEY = "x-pier-deployment"
PROJECT_KEY = "x-pier-project"
DEFAULT_PROJECT = "default"
_ATTEMPTS = 2  # the first replica, and one other when the first was unavailable
_STREAMING = frozenset({"ModelStreamInfer"})  # Triton's bidirectional extension: no replica serves it
# Metadata the gRPC library sets per call (or refuses from callers), and what the gateway sets itself.
_RESERVED = frozenset({"user-agent", "content-type", "te", "host", "x-request-id"})
_OURS = frozenset({"x-pier-predictor", "x-pier-model-version", "x-pier-revision", "x-pier-replica",
                   "x-request-id"})
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", -1),  # the replica already bounded what it sends
    ("grpc.max_send_message_length", -1),  # the gateway's server bounds what callers send
    ("grpc.enable_retries", 0),  # retrying is ours: once, on another replica
    # A replica restarted on its old port is reachable again within a poll of the table; gRPC's
    # default reconnect backoff (1 s, growing to 120 s) would keep the channel failing long after.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


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


def forwarded_metadata(metadata: Sequence[tuple[str, str | bytes]], request_id: str, *, drop_auth: bool
                       ) -> list[tuple[str, str | bytes]]:
    """The caller's metadata for the replica: pseudo and transport keys dropped, the request id set, the
    caller's token dropped when the gateway checked it (replicas, and their logs, never see it)."""
    dropped = _RESERVED | {"authorization"} if drop_auth else _RESERVED
    kept = [(k, v) for k, v in metadata
            if not k.startswith((":", "grpc-")) and k.lower() not in dropped]
    return [*kept, ("x-request-id", request_id)]


def answer_metadata(upstream: Sequence[tuple[str, str | bytes]], predictor: PredictorRoute,
                    replica: ReplicaEndpoint, request_id: str) -> list[tuple[str, str | bytes]]:
    """Trailing metadata for the caller: the replica's own, then which predictor and version answered."""
    kept = [(k, v) for k, v in upstream if not k.startswith("grpc-") and k.lower() not in _OURS]
    return [*kept, ("x-pier-predictor", predictor.name), ("x-pier-model-version", replica.model_version or ""),
            ("x-pier-revision", str(replica.revision)), ("x-pier-replica", replica.replica_id),
            ("x-request-id", request_id)]


def bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


# -- I/O -----------------------------------------------------------------------------------------
class _Refusal(Exception):
    """Ends the call with a status code and message (and trailing metadata, when a replica answered)."""

    def __init__(self, code: grpc.StatusCode, message: str, trailing: Sequence[tuple[str, str | bytes]] = ()
                 ) -> None:
        super().__init__(message)
        self.code, self.message, self.trailing = code, message, tuple(trailing)


class ChannelPool:
    """One ``grpc.aio`` channel per replica address, created on first use and kept for reuse.

    ``prune`` closes the channels of addresses no longer in the routing table, after a grace period
    for the calls still in flight on them (a closed channel cancels its calls).
    """

    def __init__(self, grace_s: float = 30.0) -> None:
        self._channels: dict[str, Any] = {}
        self._grace = grace_s
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._channels)

    def get(self, address: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        return channel

    def prune(self, live: Collection[str]) -> None:
        for address in [a for a in self._channels if a not in live]:
            task = asyncio.create_task(self._channels.pop(address).close(self._grace), name=f"close {address}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self, grace_s: float | None = None) -> None:
        channels, self._channels = list(self._channels.values()), {}
        await asyncio.gather(*(c.close(grace_s) for c in channels), *self._closing, return_exceptions=True)


def _grpc_addresses(table: RoutingTable) -> set[str]:
    return {r.grpc_url for d in table.deployments.values() for p in d.predictors for r in p.replicas
            if r.grpc_url}


class _Forwarder:
    """The generic handler: answers every unary method of the V2 service by forwarding it.

    Duck-typed rather than a ``grpc.GenericRpcHandler`` subclass: the server only calls ``service``.
    """

    def __init__(self, table_source: Callable[[], RoutingTable | None], *, verifier: InvocationVerifier | None,
                 channels: ChannelPool, outstanding: MutableMapping[str, int], rand: Callable[[], float],
                 id_factory: Callable[[], str]) -> None:
        self.table_source, self.verifier, self.channels = table_source, verifier, channels
        self.outstanding, self.rand, self.ids = outstanding, rand, id_factory
        self._pruned_for: RoutingTable | None = None

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
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from None
        table = self.table_source()
        if table is None:
            raise _Refusal(grpc.StatusCode.UNAVAILABLE,
                           "the gateway has not loaded the routing table from the control plane yet")
        if table is not self._pruned_for:  # a new table: drop the channels of replicas that left
            self.channels.prune(_grpc_addresses(table))
            self._pruned_for = table
        route = table.get(project, deployment)
        if route is None:
            raise _Refusal(grpc.StatusCode.NOT_FOUND, f"no deployment {project}/{deployment}")
        return table, route

    async def _check_token(self, table: RoutingTable, route: DeploymentRoute, lookup: Mapping[str, str]) -> None:
        if route.auth_mode != "token":
            return
        token = bearer(lookup.get("authorization"))
        if token is not None and self.verifier is not None and await self.verifier.verify(
                route.project, route.deployment, token, epoch=table.auth_epoch):
            return
        raise _Refusal(grpc.StatusCode.UNAUTHENTICATED,
                       f"{route.project}/{route.deployment} needs a valid project token or invocation key: "
                       "send metadata `authorization: Bearer ...`")

    def _predictor(self, route: DeploymentRoute, lookup: Mapping[str, str]) -> tuple[PredictorRoute,
                                                                                     list[ReplicaEndpoint]]:
        name = f"{route.project}/{route.deployment}"
        predictor, _ = choose_predictor(route, lookup.get, self.rand())
        if predictor is None or not predictor.replicas:
            why = " yet"
            if predictor is not None and predictor.scales_to_zero:
                why = f" (predictor {predictor.name} is scaled to zero; an HTTP request wakes it)"
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, f"deployment {name} has no ready replica{why}")
        replicas = [r for r in predictor.replicas if r.grpc_url]
        if not replicas:
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, f"no replica of {name} (predictor {predictor.name}) serves "
                           "gRPC: they were started without a gRPC port; restart them (a new revision) to add one")
        return predictor, replicas

    async def _forward(self, method: str, request: bytes, context: Any, *,
                       metadata: Sequence[tuple[str, str | bytes]], lookup: Mapping[str, str],
                       request_id: str) -> bytes:
        table, route = self._route(lookup)
        await self._check_token(table, route, lookup)
        limit = route.policy.max_body_bytes
        if len(request) > limit:  # the spec's limits.maxBodyBytes, as HTTP's 413
            raise _Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(request)} bytes is over "
                           f"the {limit} bytes {route.project}/{route.deployment} accepts (limits.maxBodyBytes)")
        predictor, replicas = self._predictor(route, lookup)
        name = f"{route.project}/{route.deployment}"
        timeout = route.timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, max(remaining, 0.0))
        outgoing = forwarded_metadata(metadata, request_id, drop_auth=route.auth_mode == "token")
        tried: list[str] = []
        failure = ""
        for _ in range(_ATTEMPTS):
            replica = pick_replica(replicas, self.outstanding, self.rand(), exclude=tried)
            if replica is None:
                break
            tried.append(replica.replica_id)
            assert replica.grpc_url is not None  # _predictor kept only replicas with one
            self.outstanding[replica.replica_id] = self.outstanding.get(replica.replica_id, 0) + 1
            begun = time.monotonic()
            call = self.channels.get(replica.grpc_url).unary_unary(method)(request, metadata=outgoing,
                                                                           timeout=timeout)
            try:
                response: bytes = await call
                trailing = await call.trailing_metadata()
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if code == grpc.StatusCode.UNAVAILABLE and len(tried) < _ATTEMPTS:
                    failure = f"replica {replica.replica_id} was unavailable ({details})"
                    log.info("%s; retrying gRPC request %s on another replica", failure, request_id)
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - begun >= timeout * 0.99:
                    # Our deadline, not the replica's own timeout (whose message passes through).
                    details = f"replica {replica.replica_id} of {name} did not answer within {timeout:g}s"
                elif code == grpc.StatusCode.UNAVAILABLE:
                    details = f"no replica of {name} answered: replica {replica.replica_id}: {details}"
                raise _Refusal(code, details, answer_metadata(exc.trailing_metadata() or (), predictor, replica,
                                                              request_id)) from None
            finally:
                self._done(replica.replica_id)
            context.set_trailing_metadata(answer_metadata(trailing or (), predictor, replica, request_id))
            return response
        raise _Refusal(grpc.StatusCode.UNAVAILABLE, f"no replica of {name} answered: {failure}")

    def _done(self, replica_id: str) -> None:
        left = self.outstanding.get(replica_id, 0) - 1
        if left <= 0:
            self.outstanding.pop(replica_id, None)
        else:
            self.outstanding[replica_id] = left


@dataclass(slots=True)
class GrpcGateway:
    """A running gRPC port of the gateway: ``port`` is the bound one (useful when asked for 0)."""

    server: Any  # grpc.aio.Server
    port: int
    channels: ChannelPool

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuse new calls, let those in flight finish for ``grace_s``, then close the replica channels."""
        await self.server.stop(grace_s)
        await self.channels.close()


async def start_grpc_gateway(table_source: Callable[[], RoutingTable | None], *, host: str, port: int,
                             verifier: InvocationVerifier | None, rand: Callable[[], float] = random.random,
                             id_factory: Callable[[], str] = lambda: new_id(8),
                             outstanding: MutableMapping[str, int] | None = None,
                             max_message_bytes: int = 64 * 1024 * 1024, channel_grace_s: float = 30.0
                             ) -> GrpcGateway:
    """Start serving V2 gRPC on ``host:port`` in the running event loop.

    ``table_source`` returns None until the first routing table arrived (every deployment is then
    UNAVAILABLE rather than NOT_FOUND). Pass the HTTP gateway's ``outstanding`` counter to balance both
    protocols on one count per replica. ``ServiceUnavailable`` when the port cannot be bound.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        # A port another process holds must be an error, not silently shared (gRPC's default on Linux).
        ("grpc.so_reuseport", 0),
    ])
    channels = ChannelPool(channel_grace_s)
    forwarder = _Forwarder(table_source, verifier=verifier, channels=channels, rand=rand, id_factory=id_factory,
                           outstanding=Counter() if outstanding is None else outstanding)
    server.add_generic_rpc_handlers((forwarder,))
    try:
        bound = int(server.add_insecure_port(f"{host}:{port}"))
    except RuntimeError as exc:
        bound = 0
        log.debug("binding %s:%d for gRPC failed: %s", host, port, exc)
    if bound == 0:
        with contextlib.suppress(Exception):
            await server.stop(None)
        raise ServiceUnavailable(f"the gateway cannot listen for gRPC on {host}:{port}: is the port in use? Choose "
                                 "another with --grpc-port (platform.gateway_grpc_port), or 0 to turn gRPC off",
                                 details={"host": host, "port": port})
    await server.start()
    log.info("gateway: V2 gRPC on %s:%d (deployment named by metadata %s)", host, bound, DEPLOYMENT_KEY)
    return GrpcGateway(server, bound, channels)
