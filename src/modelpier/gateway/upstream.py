"""The gateway's HTTP/1.1 client to replicas: asyncio protocols, httptools parsing, keep-alive pools.

Why not aiohttp's client (the first version used it): per request it builds request and
response objects, payload writers, timers and a context manager, which cost more than everything
else the gateway does (profile in docs/benchmarks.md). A request here is one ``transport.write`` of
pre-joined bytes, and the answer is parsed by the same C parser uvicorn uses, into one ``Answer``.

Semantics the dispatcher relies on (``proxy.ReplicaProxy`` documents them): ``Retryable`` when the
replica failed before any byte of an answer (refused, reset, closed), ``UpstreamTimeout`` when the
whole answer did not arrive in time, ``AnswerTooLarge`` above the size the gateway holds. A pooled
connection the replica closed while idle is not the replica failing: a request that dies on a
reused connection before any answer is sent once more on a fresh one, as HTTP clients do for
requests that are safe to repeat.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

from modelpier.gateway.proxy import (
    Answer,
    AnswerTooLarge,
    Headers,
    ReplicaProxy,
    Retryable,
    UpstreamTimeout,
    end_to_end,
)

_IDLE_S = 4.0  # under uvicorn's 5 s keep-alive timeout, so a pooled connection is rarely stale
_MAX_IDLE_PER_HOST = 512


class _Exchange(asyncio.Protocol):
    """One connection; at most one request on it at a time."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._started = False  # any byte of the answer arrived
        self._head = False

    # -- driving one exchange ---------------------------------------------------------------------
    def start(self, payload: bytes, head: bool) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self._status, self._headers, self._body, self._size = 0, [], [], 0
        self._started, self._head, self.reusable = False, head, False
        self.transport.write(payload)
        return self.waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.abort()

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(Retryable("the replica answered with a protocol upgrade"))
        except httptools.HttpParserError as exc:
            self.fail(Retryable(f"the replica's answer does not parse: {exc}") if not self._status
                       else AnswerTooLarge(f"the replica's answer broke off: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            reason = f"{type(exc).__name__}: {exc}" if exc else "the replica closed the connection"
            self.waiter.set_exception(_Lost(reason, started=self._started))

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        if self._head:  # no body follows a HEAD answer, whatever its content-length says
            self._finish(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.max_bytes:
            self.fail(AnswerTooLarge(f"the replica's answer is over {self.max_bytes} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._head:
            self._finish(keep_alive=self.parser.should_keep_alive())

    def _finish(self, *, keep_alive: bool) -> None:
        if self.waiter is None or self.waiter.done():
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.reusable = keep_alive and not self.closed
        self.waiter.set_result(Answer(self._status, end_to_end(self._headers), body))


class _Lost(Retryable):
    def __init__(self, message: str, *, started: bool) -> None:
        super().__init__(message)
        self.started = started


class FastReplicaProxy(ReplicaProxy):
    """``ReplicaProxy`` over raw asyncio connections, pooled per replica."""

    def __init__(self, *, connect_timeout_s: float = 2.0, max_response_bytes: int = 256 * 1024 * 1024) -> None:
        self._connect_timeout = connect_timeout_s
        self.max_response_bytes = max_response_bytes
        self._idle: dict[tuple[str, int], deque[_Exchange]] = {}
        self._targets: dict[str, tuple[str, int, bytes, bytes]] = {}  # base URL → host, port, path prefix, Host

    def _target(self, url: str) -> tuple[str, int, bytes, bytes]:
        split = url.find("/", url.find("//") + 2)
        base, path = (url, "/") if split < 0 else (url[:split], url[split:])
        known = self._targets.get(base)
        if known is None:
            parts = urlsplit(base)
            if parts.scheme != "http" or parts.hostname is None:
                raise Retryable(f"cannot forward to {base!r}: only http:// replicas are supported", delivered=False)
            known = (parts.hostname, parts.port or 80, b"", parts.netloc.encode("latin-1"))
            self._targets[base] = known
        host, port, _, netloc = known
        return host, port, path.encode("latin-1"), netloc

    async def _connect(self, host: str, port: int, timeout_s: float) -> _Exchange:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Exchange(self.max_response_bytes), host, port),
                min(self._connect_timeout, timeout_s))
        except (OSError, TimeoutError) as exc:
            raise Retryable(f"cannot connect to {host}:{port}: {type(exc).__name__}: {exc}", delivered=False) from exc
        return protocol

    def _pooled(self, key: tuple[str, int]) -> _Exchange | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_S:
                return conn
            conn.abort()
        return None

    async def send(self, method: str, url: str, headers: Headers, body: bytes, *, timeout_s: float) -> Answer:
        host, port, path, netloc = self._target(url)
        lines = [method.encode("latin-1"), b" ", path, b" HTTP/1.1\r\nhost: ", netloc,
                 b"\r\ncontent-length: ", str(len(body)).encode("latin-1"), b"\r\n"]
        for name, value in end_to_end(headers):
            lines += (name, b": ", value, b"\r\n")
        lines += (b"\r\n", body)
        payload = b"".join(lines)
        key = (host, port)
        deadline = time.monotonic() + timeout_s
        maybe_delivered = False
        for _ in range(2):
            conn = self._pooled(key)
            reused = conn is not None
            if conn is None:
                try:
                    conn = await self._connect(host, port, timeout_s)
                except Retryable as exc:
                    if maybe_delivered:  # the first try may have reached a replica that died with it
                        raise Retryable(str(exc), delivered=True) from exc
                    raise
            try:
                answer = await self._exchange(conn, payload, method == "HEAD", deadline - time.monotonic())
            except _Lost as exc:
                if reused and not exc.started:
                    # The replica closed an idle connection: not its failure, try a fresh one. Or it died
                    # with the request in it: the two look alike, so the request may have been delivered.
                    maybe_delivered = True
                    continue
                if exc.started:
                    raise Retryable(f"the replica's answer broke off: {exc}") from exc
                raise
            if conn.reusable:
                conn.idle_since = time.monotonic()
                idle = self._idle.setdefault(key, deque())
                if len(idle) < _MAX_IDLE_PER_HOST:
                    idle.append(conn)
                    return answer
            conn.abort()
            return answer
        raise Retryable(f"{host}:{port} closed two connections in a row without answering")

    async def _exchange(self, conn: _Exchange, payload: bytes, head: bool, timeout_s: float) -> Answer:
        waiter = conn.start(payload, head)
        timer = asyncio.get_running_loop().call_later(
            max(timeout_s, 0.0), conn.fail, UpstreamTimeout(f"no answer within {timeout_s:g}s"))
        try:
            return await waiter
        except asyncio.CancelledError:
            conn.abort()  # the caller left mid-answer: the connection's state is unknown
            raise
        finally:
            timer.cancel()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
