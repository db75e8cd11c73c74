"""The gateway's own HTTP/1.1 client against a real loopback server that misbehaves on request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from modelpier.gateway.proxy import AnswerTooLarge, Retryable, UpstreamTimeout
from modelpier.gateway.upstream import FastReplicaProxy

Server = tuple[str, list[asyncio.StreamWriter]]  # base URL, connections accepted


async def _serve(behaviour: Callable[[str, asyncio.StreamWriter], Awaitable[bool]]) -> tuple[asyncio.Server, Server]:
    """A server that reads each request and lets ``behaviour`` answer it; False closes the connection."""
    accepted: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                path = head.split(b" ")[1].decode()
                if not await behaviour(path, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, (f"http://127.0.0.1:{port}", accepted)


def _answer(writer: asyncio.StreamWriter, body: bytes, extra: bytes = b"") -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nserver: replica\r\n" + extra +
                 b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _behaviour(path: str, writer: asyncio.StreamWriter) -> bool:
    if path == "/ok":
        _answer(writer, b'{"ok":true}')
    elif path == "/chunked":
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    elif path == "/close":
        _answer(writer, b"bye", b"connection: close\r\n")
        await writer.drain()
        return False
    elif path == "/drop":
        return False
    elif path == "/half":
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly")
        await writer.drain()
        return False
    elif path == "/slow":
        await asyncio.sleep(3600)
    elif path == "/big":
        _answer(writer, b"x" * 5000)
    await writer.drain()
    return True


def run(test: Callable[[FastReplicaProxy, Server], Awaitable[None]], **kwargs: int) -> None:
    async def go() -> None:
        server, target = await _serve(_behaviour)
        proxy = FastReplicaProxy(**kwargs)
        try:
            await test(proxy, target)
        finally:
            await proxy.aclose()
            server.close()
            for writer in target[1]:
                writer.close()
            await server.wait_closed()
            await asyncio.sleep(0)  # let the closed transports release their sockets
    asyncio.run(go())


def test_keep_alive_reuses_one_connection_and_strips_hop_headers() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        url, accepted = target
        for _ in range(3):
            answer = await proxy.send("POST", f"{url}/ok", [(b"x-a", b"1"), (b"connection", b"close")], b"{}",
                                      timeout_s=5)
            assert (answer.status, answer.body) == (200, b'{"ok":true}')
            assert (b"content-type", b"application/json") in answer.headers
            assert all(k != b"content-length" for k, _ in answer.headers)
        assert len(accepted) == 1
    run(test)


def test_chunked_answers_are_joined() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        answer = await proxy.send("GET", f"{target[0]}/chunked", [], b"", timeout_s=5)
        assert answer.body == b"hello world"
        assert all(k != b"transfer-encoding" for k, _ in answer.headers)
    run(test)


def test_connection_close_is_honoured_and_the_next_request_opens_a_new_one() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        url, accepted = target
        assert (await proxy.send("GET", f"{url}/close", [], b"", timeout_s=5)).body == b"bye"
        assert (await proxy.send("GET", f"{url}/ok", [], b"", timeout_s=5)).status == 200
        assert len(accepted) == 2
    run(test)


def test_an_idle_connection_closed_by_the_replica_is_not_a_failure() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        url, accepted = target
        await proxy.send("GET", f"{url}/ok", [], b"", timeout_s=5)
        # The server drops the pooled connection on the next request without answering: the client
        # cannot tell that from a keep-alive timeout, so it tries once more on a fresh connection —
        # which the server drops too, and then it is the replica failing.
        with pytest.raises(Retryable):
            await proxy.send("GET", f"{url}/drop", [], b"", timeout_s=5)
        assert len(accepted) == 2
    run(test)


def test_refused_connection_is_retryable() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        with pytest.raises(Retryable, match="cannot connect"):
            await proxy.send("GET", "http://127.0.0.1:1/ok", [], b"", timeout_s=5)
    run(test)


def test_an_answer_cut_off_mid_body_is_retryable() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        with pytest.raises(Retryable, match="broke off"):
            await proxy.send("GET", f"{target[0]}/half", [], b"", timeout_s=5)
    run(test)


def test_timeout_and_size_limit() -> None:
    async def test(proxy: FastReplicaProxy, target: Server) -> None:
        with pytest.raises(UpstreamTimeout):
            await proxy.send("GET", f"{target[0]}/slow", [], b"", timeout_s=0.05)
        with pytest.raises(AnswerTooLarge):
            await proxy.send("GET", f"{target[0]}/big", [], b"", timeout_s=5)
        assert (await proxy.send("GET", f"{target[0]}/ok", [], b"", timeout_s=5)).status == 200
    run(test, max_response_bytes=1000)
