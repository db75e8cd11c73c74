"""gRPC through the gateway: metadata parsing (pure), and forwarding to fake gRPC replicas on loopback.

The replicas here are real ``grpc.aio`` servers with a generic handler that echoes the request bytes,
so every test runs the gateway's real server, dispatcher, channels and status codes, in one event loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest

from modelpier.errors import InvalidInput, ServiceUnavailable
from modelpier.gateway.compose import build_gateway
from modelpier.gateway.dispatch import Served
from modelpier.gateway.grpc_proxy import (
    GrpcGateway,
    bearer,
    forwarded_headers,
    match_target,
    metadata_lookup,
    served_metadata,
    start_grpc_gateway,
)
from modelpier.gateway.grpc_upstream import GrpcReplicaProxy
from modelpier.gateway.proxy import Answer
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable, TrafficPolicy

INFER = "/inference.GRPCInferenceService/ModelInfer"


# -- pure ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("metadata", "target"), [
    ({"x-pier-deployment": "acme/iris"}, ("acme", "iris")),
    ({"x-pier-deployment": "iris"}, ("default", "iris")),
    ({"x-pier-deployment": "iris", "x-pier-project": "acme"}, ("acme", "iris")),
    ({"x-pier-deployment": "acme/iris", "x-pier-project": "acme"}, ("acme", "iris")),
    ({"x-pier-deployment": " acme/iris "}, ("acme", "iris")),
])
def test_match_target(metadata: dict[str, str], target: tuple[str, str]) -> None:
    assert match_target(metadata) == target


@pytest.mark.parametrize(("metadata", "message"), [
    ({}, "name the deployment in the request metadata"),
    ({"x-pier-project": "acme"}, "name the deployment"),
    ({"x-pier-deployment": "a/b/c"}, "is not PROJECT/DEPLOYMENT"),
    ({"x-pier-deployment": "/iris"}, "is not PROJECT/DEPLOYMENT"),
    ({"x-pier-deployment": "acme/"}, "is not PROJECT/DEPLOYMENT"),
    ({"x-pier-deployment": "acme/iris", "x-pier-project": "other"}, "contradicts"),
])
def test_match_target_refuses_with_a_message(metadata: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        match_target(metadata)


def test_metadata_lookup_first_text_value_wins() -> None:
    assert metadata_lookup([("X-A", "1"), ("x-a", "2"), ("b-bin", b"\x00"), ("c", "3")]) == {"x-a": "1", "c": "3"}


def test_forwarded_headers_drop_transport_keys_the_request_id_and_a_checked_token() -> None:
    incoming: list[tuple[str, str | bytes]] = [
        ("user-agent", "grpc-python"), ("x-request-id", "old"), ("authorization", "Bearer t"),
        ("x-pier-deployment", "acme/iris"), ("trace-bin", b"\x01"), ("grpc-accept-encoding", "gzip")]
    assert forwarded_headers(incoming, drop_auth=True) == [
        (b"x-pier-deployment", b"acme/iris"), (b"trace-bin", b"\x01")]  # the dispatcher adds the request id
    assert (b"authorization", b"Bearer t") in forwarded_headers(incoming, drop_auth=False)


REPLICA = ReplicaEndpoint("main-1", "http://127.0.0.1:1", 3, "iris:2", "127.0.0.1:2")
MAIN = PredictorRoute("main", 100, (REPLICA,))


@pytest.mark.parametrize(("served", "expected"), [
    # A replica's answer: its own trailers kept (a spoofed x-pier-* dropped), then who answered.
    (Served(Answer(200, [(b"content-type", b"application/grpc"), (b"x-pier-predictor", b"spoofed"),
                         (b"custom", b"kept"), (b"trace-bin", b"\x00\xff")], b""), MAIN, REPLICA),
     [("custom", "kept"), ("trace-bin", b"\x00\xff"), ("x-request-id", "rid"), ("x-pier-predictor", "main"),
      ("x-pier-model-version", "iris:2"), ("x-pier-revision", "3"), ("x-pier-replica", "main-1")]),
    # A cache hit: no replica answered; the version is the predictor's, and the cache says so.
    (Served(Answer(200, [(b"content-type", b"application/grpc")], b""), MAIN, None, cache="hit"),
     [("x-request-id", "rid"), ("x-pier-predictor", "main"), ("x-pier-model-version", "iris:2"),
      ("x-pier-cache", "hit")]),
    # The gateway's own refusal before any predictor: the request id, and its Retry-After hint.
    (Served(Answer(503, [(b"content-type", b"application/json"), (b"retry-after", b"1")], b"{}")),
     [("retry-after", "1"), ("x-request-id", "rid")]),
    # A replica's error: its grpc-status/message travel as the call's status, not as metadata.
    (Served(Answer(400, [(b"content-type", b"application/grpc"), (b"grpc-status", b"3"),
                         (b"grpc-message", b"bad")], b""), MAIN, REPLICA, cache="miss"),
     [("x-request-id", "rid"), ("x-pier-predictor", "main"), ("x-pier-model-version", "iris:2"),
      ("x-pier-revision", "3"), ("x-pier-replica", "main-1"), ("x-pier-cache", "miss")]),
])
def test_served_metadata_says_who_answered(served: Served, expected: list[tuple[str, str | bytes]]) -> None:
    assert served_metadata(served, "rid") == expected


@pytest.mark.parametrize(("value", "token"), [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer ", None), (None, None)])
def test_bearer(value: str | None, token: str | None) -> None:
    assert bearer(value) == token


# -- forwarding ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """A fake replica: ModelInfer echoes ``name:`` + the request; b"bad" → INVALID_ARGUMENT; b"slow" waits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[dict[str, str]] = []
        self.server: Any = None
        self.address = ""

    def service(self, details: Any) -> Any:
        if details.method != INFER:
            return None
        return grpc.unary_unary_rpc_method_handler(self.infer)

    async def infer(self, request: bytes, context: Any) -> bytes:
        self.seen.append(metadata_lookup(list(context.invocation_metadata())))
        if request == b"bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input-0: expected shape [-1, 4], got [1, 3]")
        if request == b"slow":
            await asyncio.sleep(5)
        context.set_trailing_metadata((("x-model-trailer", "yes"),))
        return self.name.encode() + b":" + request

    async def start(self, port: int = 0) -> Replica:
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((self,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port(f'127.0.0.1:{port}')}"
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop(None)


@asynccontextmanager
async def running(*names: str) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for name in names:
            started.append(await Replica(name).start())
        yield started
    finally:
        for replica in started:
            await replica.stop()


class Verifier:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, int]] = []

    async def verify(self, project: str, deployment: str, token: str, *, epoch: int = 0) -> bool:
        self.asked.append((project, deployment, token, epoch))
        return token == "good"

    async def aclose(self) -> None:
        pass


def table(*replicas: Replica | str, auth: str = "public", version: str = "iris:2") -> RoutingTable:
    endpoints = tuple(ReplicaEndpoint(f"main-{i}", "http://127.0.0.1:1", 4, version,
                                      r if isinstance(r, str) else r.address) for i, r in enumerate(replicas))
    return RoutingTable.of([DeploymentRoute("acme", "iris", 4, (PredictorRoute("main", 100, endpoints),),
                                            timeout_s=1.0, auth_mode=auth)], auth_epoch=9)


@dataclass
class Gateway:
    grpc: GrpcGateway
    tables: StaticTable
    upstream: GrpcReplicaProxy
    infer: Any


@asynccontextmanager
async def gateway(first: RoutingTable | None, verifier: Verifier | None = None) -> AsyncIterator[Gateway]:
    """The gRPC port over a real dispatcher (``build_gateway``'s), fed by a table the test sets."""
    tables = StaticTable(first)
    upstream = GrpcReplicaProxy(tables.get)
    app = build_gateway(tables, rand=lambda: 0.0, grpc_proxy=upstream)
    gw = await start_grpc_gateway(app.dispatcher, lambda: tables.get() if tables.synced else None,
                                  host="127.0.0.1", port=0, verifier=verifier, id_factory=lambda: "generated")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}")
    try:
        yield Gateway(gw, tables, upstream, channel.unary_unary(INFER))
    finally:
        await channel.close()
        await gw.stop(0)
        await app.dispatcher.drain()
        await upstream.aclose()


DEPLOYMENT = (("x-pier-deployment", "acme/iris"),)


async def call(infer: Any, body: bytes, metadata: tuple[tuple[str, str], ...] = DEPLOYMENT
               ) -> tuple[bytes, dict[str, str]]:
    c = infer(body, metadata=metadata, timeout=5)  # the caller's deadline: longer than the deployment's 1 s
    response = await c
    return response, metadata_lookup(list(await c.trailing_metadata()))


async def code_of(infer: Any, body: bytes, metadata: tuple[tuple[str, str], ...] = DEPLOYMENT
                  ) -> tuple[Any, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(infer, body, metadata)
    return info.value.code(), info.value.details(), metadata_lookup(list(info.value.trailing_metadata() or ()))


def test_forwards_bytes_and_answers_with_trailing_metadata() -> None:
    async def scenario() -> None:
        async with running("r0") as [replica], gateway(table(replica)) as gw:
            body, trailing = await call(gw.infer, b"hello", (("x-pier-deployment", "acme/iris"),
                                                             ("x-request-id", "abc"), ("x-custom", "1")))
            assert body == b"r0:hello"
            assert trailing["x-pier-predictor"] == "main"
            assert trailing["x-pier-model-version"] == "iris:2"
            assert trailing["x-pier-revision"] == "4"
            assert trailing["x-request-id"] == "abc"
            assert trailing["x-model-trailer"] == "yes"  # the replica's own trailers pass through
            assert "x-pier-cache" not in trailing  # the deployment has no cache
            assert replica.seen[-1]["x-custom"] == "1"
            assert replica.seen[-1]["x-request-id"] == "abc"
            assert "x-forwarded-prefix" not in replica.seen[-1]  # an HTTP proxy header, not gRPC metadata
            # The short form, project from its own key
            body, trailing = await call(gw.infer, b"x", (("x-pier-deployment", "iris"), ("x-pier-project", "acme")))
            assert body == b"r0:x"
            assert trailing["x-request-id"] == "generated"

    asyncio.run(scenario())


def test_errors_are_status_codes_with_messages() -> None:
    async def scenario() -> None:
        async with running("r0") as [replica], gateway(None) as gw:
            code, details, _ = await code_of(gw.infer, b"x")
            assert (code, details) == (grpc.StatusCode.UNAVAILABLE,
                                       "the gateway has not loaded the routing table from the control plane yet")
            gw.tables.set(table(replica))
            code, details, _ = await code_of(gw.infer, b"x", ())
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert "x-pier-deployment: PROJECT/DEPLOYMENT" in details
            code, details, trailing = await code_of(gw.infer, b"x", (("x-pier-deployment", "acme/nope"),))
            assert (code, details) == (grpc.StatusCode.NOT_FOUND, "no deployment acme/nope")
            assert trailing["x-request-id"] == "generated"
            # The replica's own error passes through, code and message, with the gateway's trailers.
            code, details, trailing = await code_of(gw.infer, b"bad")
            assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "input-0: expected shape [-1, 4], got [1, 3]")
            assert trailing["x-pier-predictor"] == "main"
            # The deployment's timeout (1 s) is shorter than the caller's deadline (5 s).
            code, details, _ = await code_of(gw.infer, b"slow")
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert details == "replica main-0 of acme/iris: no answer within 1s (timeouts.requestSeconds=1)"
            gw.tables.set(RoutingTable.of([DeploymentRoute("acme", "iris", 4, (PredictorRoute("main", 100),))]))
            code, details, _ = await code_of(gw.infer, b"x")
            assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "deployment acme/iris has no ready replica yet")

    asyncio.run(scenario())


def test_a_message_over_the_deployments_body_limit_is_resource_exhausted() -> None:
    async def scenario() -> None:
        async with running("r0") as [replica]:
            route = table(replica).get("acme", "iris")
            assert route is not None
            small = RoutingTable.of([replace(route, policy=TrafficPolicy(max_body_bytes=8))])
            async with gateway(small) as gw:
                assert (await call(gw.infer, b"12345678"))[0] == b"r0:12345678"
                code, details, _ = await code_of(gw.infer, b"123456789")
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert details == ("request message of 9 bytes is over the 8 bytes acme/iris accepts "
                                   "(limits.maxBodyBytes)")

    asyncio.run(scenario())


def test_unknown_method_is_unimplemented_and_replicas_without_grpc_are_named() -> None:
    async def scenario() -> None:
        no_grpc = RoutingTable.of([DeploymentRoute("acme", "iris", 1, (PredictorRoute("main", 100, (
            ReplicaEndpoint("main-0", "http://127.0.0.1:1", 1),)),))])
        async with gateway(no_grpc) as gw:
            code, details, _ = await code_of(gw.infer, b"x")
            assert code == grpc.StatusCode.UNAVAILABLE
            assert "serves gRPC" in details
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc.port}")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary("/other.Service/Call")(b"", metadata=(("x-pier-deployment", "acme/iris"),))
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            await channel.close()

    asyncio.run(scenario())


def test_an_unreachable_replica_is_retried_on_another() -> None:
    async def scenario() -> None:
        dead = f"127.0.0.1:{free_port()}"  # nothing listens there
        async with running("live") as [live], gateway(table(dead, live)) as gw:
            for _ in range(4):  # rand 0.0 picks the first of equals: the dead one, until passive health ejects it
                body, trailing = await call(gw.infer, b"x")
                assert body == b"live:x"
                assert trailing["x-pier-replica"] == "main-1"
        async with gateway(table(dead)) as gw:
            code, details, _ = await code_of(gw.infer, b"x")
            assert code == grpc.StatusCode.UNAVAILABLE
            assert details.startswith("no replica of acme/iris answered: replica main-0")

    asyncio.run(scenario())


def test_token_deployments_need_a_verified_bearer_which_replicas_never_see() -> None:
    async def scenario() -> None:
        verifier = Verifier()
        async with running("r0") as [replica], gateway(table(replica, auth="token"), verifier) as gw:
            code, details, _ = await code_of(gw.infer, b"x")
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer" in details
            code, _, _ = await code_of(gw.infer, b"x", (("x-pier-deployment", "acme/iris"),
                                                        ("authorization", "Bearer wrong")))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            body, _ = await call(gw.infer, b"x", (("x-pier-deployment", "acme/iris"),
                                                  ("authorization", "Bearer good")))
            assert body == b"r0:x"
            assert "authorization" not in replica.seen[-1]
            assert verifier.asked[-1] == ("acme", "iris", "good", 9)  # checked against the table's auth epoch
            code, details, _ = await code_of(gw.infer, b"x", (("x-pier-deployment", "acme/iris"),
                                                              ("authorization", "Bearer good"),
                                                              ("authorization", "Bearer wrong")))
            assert code == grpc.StatusCode.INVALID_ARGUMENT  # one call, one identity, as over HTTP
            assert "several authorization" in details
        async with gateway(table("127.0.0.1:1", auth="token"), None) as gw:  # no verifier: closed
            code, _, _ = await code_of(gw.infer, b"x", (("x-pier-deployment", "acme/iris"),
                                                        ("authorization", "Bearer good")))
            assert code == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(scenario())


def test_channels_are_reused_and_dropped_with_their_replica() -> None:
    async def scenario() -> None:
        async with running("a", "b") as [a, b], gateway(table(a)) as gw:
            for _ in range(3):
                await call(gw.infer, b"x")
            assert len(gw.upstream.channels) == 1
            gw.tables.set(table(b))
            assert (await call(gw.infer, b"x"))[0] == b"b:x"
            assert len(gw.upstream.channels) == 1  # a's channel closed: a left the table

    asyncio.run(scenario())


def test_a_busy_port_is_a_clear_error() -> None:
    async def scenario() -> None:
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        app = build_gateway(StaticTable())
        try:
            with pytest.raises(ServiceUnavailable, match=f"cannot listen for gRPC on 127.0.0.1:{port}"):
                await start_grpc_gateway(app.dispatcher, lambda: None, host="127.0.0.1", port=port, verifier=None)
        finally:
            holder.close()

    asyncio.run(scenario())
