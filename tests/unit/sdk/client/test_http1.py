"""The client's HTTP/1.1 transport against a loopback socket server that misbehaves on purpose:
idle connections the server closed are not errors; a connection that breaks after the request is
``Lost``; no listener is ``NotConnected``; a slow answer is ``TimedOut``."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from modelpier.sdk.client.http1 import AsyncPool, Lost, NotConnected, SyncPool, TimedOut, request_bytes, split
from tests.support.procs import wait_until

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\nx-request-id: r1\r\n\r\n{}"


CLOSED: list[int] = []  # connections the test server has closed, for waiting on them


@contextmanager
def server(handle: Callable[[socket.socket, int], bool]) -> Iterator[str]:
    """Accepts connections; ``handle(conn, n)`` answers the n-th request, False closes the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    count = [0]
    CLOSED.clear()

    def serve(conn: socket.socket) -> None:
        try:
            while not stop.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                count[0] += 1
                if not handle(conn, count[0]):
                    return
        finally:
            conn.close()
            CLOSED.append(1)

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v2/models/m/infer"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def answer_then_close(conn: socket.socket, n: int) -> bool:
    conn.sendall(OK)
    return False  # the server drops every connection after one answer (an idle keep-alive timeout)


def test_request_bytes_are_one_write() -> None:
    assert request_bytes("POST", "/p?q=1", "h:1", {"x-a": "b"}, b"{}") == (
        b"POST /p?q=1 HTTP/1.1\r\nhost: h:1\r\ncontent-length: 2\r\nx-a: b\r\n\r\n{}")
    assert split("http://h:81/a?b=c") == ("h", 81, "/a?b=c", "h:81")


def test_sync_pool_reuses_and_skips_connections_the_server_closed() -> None:
    pool = SyncPool()
    with server(answer_then_close) as url:
        for i in range(3):  # each call after the first finds its pooled connection closed: a fresh one
            answer = pool.request("POST", url, {}, b"{}", 5)
            assert (answer.status, answer.body, answer.headers["x-request-id"]) == (200, b"{}", "r1")
            wait_until(lambda i=i: len(CLOSED) > i, timeout=5, what="the server to close the connection")
    pool.close()


def test_sync_pool_keeps_a_live_connection() -> None:
    pool = SyncPool()
    with server(lambda conn, n: conn.sendall(OK) is None) as url:
        for _ in range(3):
            assert pool.request("POST", url, {}, b"{}", 5).status == 200
    pool.close()


def test_a_connection_broken_after_the_request_is_lost() -> None:
    with server(lambda conn, n: False) as url, pytest.raises(Lost):
        SyncPool().request("POST", url, {}, b"{}", 5)


def test_no_listener_is_not_connected() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NotConnected):
        SyncPool().request("POST", f"http://127.0.0.1:{port}/", {}, b"{}", 2)


def test_a_slow_answer_times_out() -> None:
    release = threading.Event()
    with server(lambda conn, n: release.wait(5)) as url:
        try:
            with pytest.raises(TimedOut):
                SyncPool().request("POST", url, {}, b"{}", 0.2)
        finally:
            release.set()


def test_async_pool() -> None:
    async def main(url: str) -> list[int]:
        pool = AsyncPool()
        statuses = []
        for i in range(3):
            statuses.append((await pool.request("POST", url, {}, b"{}", 5)).status)
            await asyncio.to_thread(wait_until, lambda i=i: len(CLOSED) > i, timeout=5, what="the server's close")
            await asyncio.sleep(0)  # one turn of the loop reads the EOF of the idle connection
        pool.close()
        return statuses

    with server(answer_then_close) as url:
        assert asyncio.run(main(url)) == [200, 200, 200]
    with server(lambda conn, n: False) as url, pytest.raises(Lost):
        asyncio.run(main(url))
