"""The client's plain-HTTP/1.1 transport for predictions: one write per request, httptools to parse.

Why not httpx for every call: per request httpx builds request, response, header and stream objects
and walks its pool under a lock; measured against ``tritonclient`` (geventhttpclient, a C parser)
that cost 2-3x the client CPU per call and, in the asyncio client at 64 callers, collapsed
throughput (docs/benchmarks.md). A call here is one ``sendall`` (sync) or ``transport.write``
(asyncio) of pre-joined bytes and the answer parsed by the C parser uvicorn uses. httpx still serves
https URLs (TLS, proxies) and every call off the hot path.

Semantics the retry policy relies on: ``NotConnected`` when no connection could be made (the request
never left), ``TimedOut`` when the answer did not come in time, ``Lost`` when a connection broke after
the request was written, maybe read by the server. A pooled connection is checked before reuse (a
connection the server closed while idle reads as EOF) and dropped if closed; one that breaks anyway
is ``Lost``, never resent.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

_MAX_IDLE = 256


class NotConnected(Exception):
    """No connection: the request was not sent."""


class TimedOut(Exception):
    """No (whole) answer in time."""


class Lost(Exception):
    """The connection broke after the request was written."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


_targets: dict[str, tuple[str, int, str, str]] = {}


def split(url: str) -> tuple[str, int, str, str]:
    """``(host, port, path?query, netloc)`` of an http:// URL (cached: a client calls few URLs)."""
    found = _targets.get(url)
    if found is None:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        found = (parts.hostname or "127.0.0.1", parts.port or 80, path, parts.netloc)
        if len(_targets) < 4096:
            _targets[url] = found
    return found


def request_bytes(method: str, path: str, netloc: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1\r\nhost: {netloc}\r\n"]
    if body is not None:
        lines.append(f"content-length: {len(body)}\r\n")
    lines.extend(f"{k}: {v}\r\n" for k, v in headers.items())
    lines.append("\r\n")
    head = "".join(lines).encode("latin-1")
    return head + body if body else head


class _Parse:
    """httptools callbacks for one answer."""

    __slots__ = ("body", "done", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.done = False
        self.status = 0
        self.keep_alive = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()

    def answer(self) -> Answer:
        return Answer(self.status, self.headers, self.body[0] if len(self.body) == 1 else b"".join(self.body))


# -- blocking ------------------------------------------------------------------------------------------
def _closed(sock: socket.socket) -> bool:
    """An idle connection the server closed (or sent something unasked on) is not reusable."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@dataclass
class SyncPool:
    """Keep-alive connections per (host, port), shared by threads (each takes one while it calls)."""

    _idle: dict[tuple[str, int], deque[socket.socket]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take(self, key: tuple[str, int]) -> socket.socket | None:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                sock = idle.pop()
                if not _closed(sock):
                    return sock
                sock.close()
        return None

    def _give(self, key: tuple[str, int], sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, deque())
            if len(idle) < _MAX_IDLE:
                idle.append(sock)
                return
        sock.close()

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                timeout_s: float) -> Answer:
        host, port, path, netloc = split(url)
        key = (host, port)
        sock = self._take(key)
        if sock is None:
            try:
                sock = socket.create_connection(key, timeout=timeout_s)
            except OSError as exc:
                raise NotConnected(f"{type(exc).__name__}: {exc}") from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout_s)
        parse = _Parse()
        try:
            sock.sendall(request_bytes(method, path, netloc, headers, body))
            while not parse.done:
                data = sock.recv(262_144)
                if not data:
                    raise Lost("the server closed the connection before answering")
                parse.parser.feed_data(data)
        except TimeoutError:
            sock.close()
            raise TimedOut(f"no answer within {timeout_s:.3g}s") from None
        except (OSError, httptools.HttpParserError) as exc:
            sock.close()
            raise Lost(f"{type(exc).__name__}: {exc}") from None
        except Lost:
            sock.close()
            raise
        if parse.keep_alive:
            self._give(key, sock)
        else:
            sock.close()
        return parse.answer()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for sock in idle:
                    sock.close()
            self._idle.clear()


# -- asyncio -------------------------------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.parse = _Parse()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def start(self, payload: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.parse = _Parse()
        self.transport.write(payload)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        try:
            self.parse.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(Lost(f"the answer does not parse: {exc}"))
            return
        if self.parse.done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parse.answer())

    def eof_received(self) -> bool:
        self.closed = True  # the server closed its side: never reuse this connection
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(Lost("the server closed the connection before answering"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            why = f"{type(exc).__name__}: {exc}" if exc else "the server closed the connection"
            self.waiter.set_exception(Lost(why))

    def fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class AsyncPool:
    """Keep-alive connections per (host, port) for one event loop."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                      timeout_s: float) -> Answer:
        host, port, path, netloc = split(url)
        key = (host, port)
        loop = asyncio.get_running_loop()
        conn = self._reuse(key) or await self._connect(host, port, timeout_s)
        waiter = conn.start(request_bytes(method, path, netloc, headers, body))
        timer = loop.call_later(max(timeout_s, 0.0), conn.fail, TimedOut(f"no answer within {timeout_s:.3g}s"))
        try:
            answer = await waiter
        except asyncio.CancelledError:
            conn.abort()  # the caller left mid-answer: the connection's state is unknown
            raise
        finally:
            timer.cancel()
        if conn.parse.keep_alive and not conn.closed:
            queue = self._idle.setdefault(key, deque())
            if len(queue) < _MAX_IDLE:
                queue.append(conn)
                return answer
        conn.abort()
        return answer

    @staticmethod
    async def _connect(host: str, port: int, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(_Connection, host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            raise NotConnected(f"{type(exc).__name__}: {exc}") from None
        return conn

    def _reuse(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            candidate = idle.pop()
            if not candidate.closed and candidate.transport is not None and not candidate.transport.is_closing():
                return candidate
        return None

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()


def fast(url: str) -> bool:
    """Plain http:// goes through this module; https:// through httpx."""
    return url.startswith("http://")

