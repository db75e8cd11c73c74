"""The gateway's own HTTP/1.1 server over real loopback sockets: framing, limits, keep-alive, shutdown.

The app behind it is the real ``GatewayApp`` with a fake replica proxy (``fakes.FakeProxy``), so what
these tests see on the wire is what a client of the gateway sees.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import orjson
import pytest

from modelpier.gateway.app import GatewayApp
from modelpier.gateway.compose import build_gateway
from modelpier.gateway.http1 import GatewayHttpServer, encode_answer
from modelpier.gateway.proxy import Answer
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable, TrafficPolicy
from tests.unit.gateway.fakes import FakeProxy, run

REPLICA = ReplicaEndpoint("main-a", "http://main-a", 3, "iris:1")
INFER = b"/acme/iris/v2/models/iris/infer"


def _table(max_body: int = 1000) -> StaticTable:
    return StaticTable(RoutingTable.of([DeploymentRoute(
        "acme", "iris", 3, (PredictorRoute("main", 100, (REPLICA,)),),
        policy=TrafficPolicy(max_body_bytes=max_body))]))


class Wire:
    """A raw client connection: send bytes, read whole answers (head parsed, body by content-length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        size = 0 if head or status == 100 else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(size), 5)
        return status, headers, body

    async def closed(self) -> bool:
        """True when the server closed the connection (end of stream, nothing more sent)."""
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    def close(self) -> None:
        self.writer.close()


Scenario = Callable[[Callable[[], Awaitable[Wire]], FakeProxy, GatewayHttpServer], Awaitable[None]]


def serve(scenario: Scenario, *, max_body: int = 1000, keep_alive_s: float = 5.0,
          app: Callable[[FakeProxy], GatewayApp] | None = None, **limits: float) -> None:
    proxy = FakeProxy()

    async def go() -> None:
        gateway = app(proxy) if app else build_gateway(_table(max_body), proxy=proxy)
        await gateway.startup()
        server = GatewayHttpServer(gateway, keep_alive_s=keep_alive_s, max_head_bytes=2048, **limits)
        await server.start("127.0.0.1", 0)
        wires: list[Wire] = []

        async def connect() -> Wire:
            wire = Wire(*await asyncio.open_connection("127.0.0.1", server.port))
            wires.append(wire)
            return wire
        try:
            await scenario(connect, proxy, server)
        finally:
            for wire in wires:
                wire.close()
            await server.stop(1.0)
            await gateway.shutdown()
    run(go)


def post(path: bytes = INFER, body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nhost: gw\r\ncontent-length: " + str(len(body)).encode() + b"\r\n" + \
        extra + b"\r\n" + body


def test_keep_alive_serves_several_requests_on_one_connection_with_framing_headers() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        for i in range(3):
            await wire.send(post(body=b'{"n": %d}' % i))
            status, headers, body = await wire.answer()
            assert status == 200
            assert orjson.loads(body)["outputs"][0]["data"] == [0]
            assert int(headers["content-length"]) == len(body)
            assert re.match(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", headers["date"])
            assert headers["x-pier-predictor"] == "main"
            assert headers["x-request-id"]
            assert "connection" not in headers
        assert [c[3] for c in proxy.calls] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    serve(scenario)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"x-request-id: first\r\n") + b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n"
                        + post(extra=b"x-request-id: third\r\n"))
        answers = [await wire.answer() for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert answers[0][1]["x-request-id"] == "first"
        assert orjson.loads(answers[1][2])["status"] == "ok"
        assert answers[2][1]["x-request-id"] == "third"
    serve(scenario)


def test_the_raw_path_and_query_reach_the_replica_unchanged() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(b"/acme/iris/v2/models/a%2Fb/infer?x=1&y=%20"))
        assert (await wire.answer())[0] == 200
        assert proxy.calls[0][1] == "http://main-a/v2/models/a%2Fb/infer?x=1&y=%20"
    serve(scenario)


def test_chunked_request_bodies_are_forwarded_whole() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert (await wire.answer())[0] == 200
        assert proxy.calls[0][3] == b"hello world"
        assert all(k != b"transfer-encoding" for k, _ in proxy.calls[0][2])
    serve(scenario)


def test_expect_100_continue_gets_the_interim_answer_before_the_body() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\n"
                        b"expect: 100-continue\r\n\r\n")
        assert (await wire.answer())[0] == 100
        await wire.send(b"{}")
        assert (await wire.answer())[0] == 200
        assert proxy.calls[0][3] == b"{}"
    serve(scenario)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\ncontent-length: 5000\r\n"
                        b"expect: 100-continue\r\n\r\n")
        status, headers, body = await wire.answer()
        assert status == 413
        assert headers["connection"] == "close"
        assert "5000 bytes" in orjson.loads(body)["error"]["message"]
        assert "limits.maxBodyBytes" in orjson.loads(body)["error"]["message"]
        assert await wire.closed()
        assert proxy.calls == []
    serve(scenario)


def test_a_chunked_body_growing_over_the_limit_is_cut_off_with_413() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n" + chunk)
        status, headers, _ = await wire.answer()
        assert status == 413
        assert headers["connection"] == "close"
        assert await wire.closed()
        assert proxy.calls == []
    serve(scenario)


def test_an_unknown_deployment_is_404_and_the_connection_stays_usable() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(b"/acme/nope/v2/models/iris/infer", body=b'{"a": 1}'))
        status, headers, body = await wire.answer()
        assert status == 404
        assert "connection" not in headers
        assert "no deployment acme/nope" in orjson.loads(body)["error"]["message"]
        await wire.send(post())
        assert (await wire.answer())[0] == 200
    serve(scenario)


def test_garbage_is_400_naming_the_problem_then_closed() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"HELLO THERE\r\n\r\n")
        status, headers, body = await wire.answer()
        assert status == 400
        assert headers["connection"] == "close"
        assert "does not parse as HTTP/1.1" in orjson.loads(body)["error"]["message"]
        assert await wire.closed()
    serve(scenario)


def test_headers_over_the_limit_are_431() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"x-big: " + b"y" * 4000 + b"\r\n"))
        status, _, body = await wire.answer()
        assert status == 431
        assert orjson.loads(body)["error"]["code"] == "headers_too_large"
        assert await wire.closed()
        assert proxy.calls == []
    serve(scenario)


def test_http_1_0_closes_unless_asked_to_keep_alive() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        kept = await connect()
        await kept.send(b"GET /healthz HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        assert (await kept.answer())[1]["connection"] == "keep-alive"
        await kept.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, headers, _ = await kept.answer()
        assert status == 200
        assert headers["connection"] == "close"
        assert await kept.closed()
    serve(scenario)


def test_connection_close_from_the_client_is_honoured() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"connection: close\r\n"))
        status, headers, _ = await wire.answer()
        assert status == 200
        assert headers["connection"] == "close"
        assert await wire.closed()
    serve(scenario)


def test_head_answers_carry_no_body() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"HEAD /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
        status, headers, body = await wire.answer(head=True)
        assert status == 200
        assert int(headers["content-length"]) > 0
        assert body == b""
        await wire.send(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")  # framing intact after HEAD
        assert (await wire.answer())[0] == 200
    serve(scenario)


def test_idle_keep_alive_connections_are_closed() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
        assert (await wire.answer())[0] == 200
        assert await wire.closed()  # within the keep-alive time and one sweep (answer() waits up to 5 s)
    serve(scenario, keep_alive_s=0.2)


def test_stop_lets_the_request_in_flight_finish_and_refuses_new_connections() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, server: GatewayHttpServer) -> None:
        proxy.gate = asyncio.Event()
        wire = await connect()
        await wire.send(post())
        await proxy.wait_for_calls(1)
        stopping = asyncio.create_task(server.stop(5.0))
        await asyncio.sleep(0)  # let stop() close the listener
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", server.port)
        proxy.gate.set()
        status, headers, _ = await wire.answer()
        assert status == 200
        assert headers["connection"] == "close"
        await stopping
    serve(scenario)


def test_a_port_in_use_is_a_clear_error() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, server: GatewayHttpServer) -> None:
        from modelpier.errors import ServiceUnavailable
        other = GatewayHttpServer(server.app)
        with pytest.raises(ServiceUnavailable, match=rf"cannot listen on 127.0.0.1:{server.port}"):
            await other.start("127.0.0.1", server.port)
    serve(scenario)


def test_an_app_failure_is_500_with_the_request_id_never_a_traceback() -> None:
    class Broken(FakeProxy):
        async def send(self, *args: object, **kwargs: object) -> Answer:
            raise RuntimeError("secret internals")

    async def scenario(connect: Callable[[], Awaitable[Wire]], _proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"x-request-id: req-42\r\n"))
        status, _, body = await wire.answer()
        assert status == 500
        message = orjson.loads(body)["error"]["message"]
        assert "req-42" in message
        assert "secret" not in message
        await wire.send(post())  # the connection survives
        assert (await wire.answer())[0] == 500
    serve(scenario, app=lambda _: build_gateway(_table(), proxy=Broken()))


def test_encode_answer_joins_small_answers_and_splits_large_ones() -> None:
    small = encode_answer(Answer(200, [(b"content-type", b"text/plain")], b"hi"))
    assert len(small) == 1
    assert small[0].startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n")
    assert small[0].endswith(b"content-type: text/plain\r\n\r\nhi")
    large = encode_answer(Answer(200, [], b"x" * 100_000))
    assert len(large) == 2
    assert large[1] == b"x" * 100_000
    assert encode_answer(Answer(404, [], b"body"), head_only=True)[0].endswith(b"\r\n\r\n")



class _GatedVerifier:
    """Accepts ``pier_good`` once ``gate`` opens; records that it was asked."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.was_asked = asyncio.Event()
        self.asked = 0

    async def verify(self, project: str, deployment: str, token: str, *, epoch: int = 0) -> bool:
        self.asked += 1
        self.was_asked.set()
        await self.gate.wait()
        return token == "pier_good"

    async def aclose(self) -> None:
        pass


def _token_gateway(verifier: _GatedVerifier) -> Callable[[FakeProxy], GatewayApp]:
    from modelpier.gateway.compose import GatewayParts

    table = StaticTable(RoutingTable.of([DeploymentRoute(
        "acme", "iris", 3, (PredictorRoute("main", 100, (REPLICA,)),), auth_mode="token")]))
    return lambda proxy: build_gateway(table, GatewayParts(verifier=verifier), proxy=proxy)


def test_a_stranger_is_refused_before_the_body_is_read() -> None:
    verifier = _GatedVerifier()

    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, server: GatewayHttpServer) -> None:
        wire = await connect()
        # The head and a first part of a large body; the rest would follow if the gateway kept reading.
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer pier_bad\r\n"
                        b"content-length: 500\r\n\r\n" + b"x" * 10)
        await asyncio.wait_for(verifier.was_asked.wait(), 5)
        conn = next(iter(server.connections))
        assert conn.transport is not None
        assert not conn.transport.is_reading()  # held while the caller is checked
        verifier.gate.set()
        status, headers, body = await wire.answer()
        assert status == 401
        assert headers["connection"] == "close"
        assert orjson.loads(body)["error"]["code"] == "unauthenticated"
        assert await wire.closed()
        assert proxy.calls == []
    serve(scenario, app=_token_gateway(verifier))


def test_a_known_caller_gets_100_continue_after_the_check_and_is_served() -> None:
    verifier = _GatedVerifier()

    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer pier_good\r\n"
                        b"content-length: 2\r\nexpect: 100-continue\r\n\r\n")
        await asyncio.wait_for(verifier.was_asked.wait(), 5)
        verifier.gate.set()
        assert (await wire.answer())[0] == 100
        await wire.send(b"{}")
        assert (await wire.answer())[0] == 200
        assert verifier.asked == 1  # checked once, not again when answering
        assert all(k != b"authorization" for k, _ in proxy.calls[0][2])
    serve(scenario, app=_token_gateway(verifier))


def test_a_refused_caller_whose_body_already_arrived_keeps_the_connection() -> None:
    verifier = _GatedVerifier()
    verifier.gate.set()

    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"authorization: Bearer pier_bad\r\n"))
        status, headers, _ = await wire.answer()
        assert status == 401
        assert "connection" not in headers
        await wire.send(post(extra=b"authorization: Bearer pier_good\r\n"))
        assert (await wire.answer())[0] == 200
        assert len(proxy.calls) == 1
    serve(scenario, app=_token_gateway(verifier))



# -- the limits that bound a single request (docs/security.md) ----------------------------------------
def test_more_headers_than_the_limit_are_431() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"".join(b"x-h%d: v\r\n" % i for i in range(30))))
        status, _, body = await wire.answer()
        assert status == 431
        assert "more than 20 headers" in orjson.loads(body)["error"]["message"]
        assert await wire.closed()
        wire = await connect()
        await wire.send(post(extra=b"".join(b"x-h%d: v\r\n" % i for i in range(10))))
        assert (await wire.answer())[0] == 200
        assert len(proxy.calls) == 1
    serve(scenario, max_headers=20)


async def _trickle(wire: Wire, pieces: list[bytes], every_s: float) -> None:
    """A slow client: one piece at a time, never idle long enough for the keep-alive sweep."""
    for piece in pieces:
        try:
            await wire.send(piece)
        except ConnectionError:
            return  # closed by the gateway, as it should
        await asyncio.sleep(every_s)  # the client's pace is the test's input


def test_a_head_trickled_in_past_its_deadline_is_408_and_closed() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        slow = asyncio.ensure_future(_trickle(wire, [b"POST " + INFER + b" HTTP/1.1\r\n"]
                                              + [b"x-slow-%d: v\r\n" % i for i in range(40)], 0.1))
        status, headers, body = await wire.answer()
        slow.cancel()
        assert status == 408
        assert headers["connection"] == "close"
        assert "headers did not arrive within 0.5s" in orjson.loads(body)["error"]["message"]
        assert await wire.closed()
        assert proxy.calls == []
    serve(scenario, keep_alive_s=2.0, head_timeout_s=0.5)


def test_a_body_trickled_in_past_its_deadline_is_408_and_closed() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        head = b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\ncontent-length: 40\r\n\r\n"
        slow = asyncio.ensure_future(_trickle(wire, [head] + [b"x"] * 39, 0.1))
        status, _, body = await wire.answer()
        slow.cancel()
        assert status == 408
        assert "body did not arrive within 0.5s" in orjson.loads(body)["error"]["message"]
        assert await wire.closed()
        assert proxy.calls == []
    serve(scenario, keep_alive_s=2.0, body_timeout_s=0.5)


@pytest.mark.parametrize("extra", [
    b"transfer-encoding: gzip, chunked\r\n",
    b"transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
])
def test_transfer_codings_other_than_chunked_are_refused(extra: bytes) -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(b"POST " + INFER + b" HTTP/1.1\r\nhost: gw\r\n" + extra + b"\r\n2\r\n{}\r\n0\r\n\r\n")
        status, _, body = await wire.answer()
        assert status == 400
        assert "Transfer-Encoding 'gzip" in orjson.loads(body)["error"]["message"]
        assert proxy.calls == []
    serve(scenario)


def test_two_authorization_headers_are_refused() -> None:
    async def scenario(connect: Callable[[], Awaitable[Wire]], proxy: FakeProxy, _server: GatewayHttpServer) -> None:
        wire = await connect()
        await wire.send(post(extra=b"authorization: Bearer pier_a\r\nauthorization: Bearer pier_b\r\n"))
        status, _, body = await wire.answer()
        assert status == 400
        assert "2 Authorization headers" in orjson.loads(body)["error"]["message"]
        await wire.send(post(extra=b"accept: a\r\naccept: b\r\nauthorization: Bearer pier_a\r\n"))
        assert (await wire.answer())[0] == 200  # other repeated headers are fine
        assert len(proxy.calls) == 1
    serve(scenario)
