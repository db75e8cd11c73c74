"""A minimal HTTP/1.1 keep-alive client for the load: one connection per worker, one request at a time.

Why not aiohttp's client: it builds request and response objects, timers and context managers per
request, so ``pier bench`` measured itself: against one ``pier serve`` replica at 8 connections it
reached ~2,900 req/s where wrk reached 5,400-6,900; this client reaches ~5,400 where wrk reaches
7,200-7,500 (docs/bench.md). A request is one ``transport.write`` of bytes built once per run, and the
answer is parsed by httptools (the C parser uvicorn uses), keeping only the status, the framing and
the first bytes of the body (enough to show why a request failed). The gateway's ``upstream.py`` makes the same
choice for the same reason; this is a separate copy because ``bench`` must not import the gateway.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from modelpier.errors import InvalidInput

SAMPLE_BYTES = 300  # of a body kept: the start of an error message, never a whole large answer


class Disconnected(Exception):
    """The server closed the connection before a whole answer arrived."""


class BadResponse(Exception):
    """The bytes that came back are not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go, and the request bytes, built once."""

    host: str
    port: int
    tls: bool
    payload: bytes

    @classmethod
    def of(cls, url: str, method: str, headers: tuple[tuple[str, str], ...], body: bytes | None) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"{url!r} is not an http:// or https:// URL")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host_header = parts.netloc.rpartition("@")[2]  # never send userinfo in Host
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("host", "content-length", "connection")]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return cls(parts.hostname, port, tls, head + (body or b""))


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``exchange`` sends the payload and waits for the whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._sample = bytearray()
        self.keep_alive = True

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if endpoint.tls else None
        _, protocol = await loop.create_connection(cls, endpoint.host, endpoint.port, ssl=context)
        return protocol

    def exchange(self, payload: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        assert self._waiter is None, "one request at a time per connection"
        self._waiter = asyncio.get_running_loop().create_future()
        self._sample.clear()
        self.transport.write(payload)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (create_connection made it); uvloop's is no subclass of asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(str(exc) or type(exc).__name__))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(Disconnected(str(exc) if exc else "connection closed"))

    # -- httptools callbacks --------------------------------------------------------------------------
    def on_body(self, body: bytes) -> None:
        room = SAMPLE_BYTES - len(self._sample)
        if room > 0:
            self._sample += body[:room]

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), bytes(self._sample)))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
