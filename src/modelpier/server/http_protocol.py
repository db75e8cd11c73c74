"""uvicorn's httptools protocol with the bounds it lacks: header count and size, head and body deadlines,
and transfer codings it does not decode.

uvicorn parses as many headers as a client sends (10,000 were accepted), waits for a request's head
and body as long as bytes keep trickling in, and reads ``Transfer-Encoding: gzip, chunked`` as if the
body were not compressed. This subclass, used by ``app.ModelServer``, refuses on the wire:

- more than ``max_headers`` header lines, or a request line and headers over ``max_head_bytes``: 431;
- a transfer coding other than ``chunked``: 400 (RFC 9112 allows 501, but a 5xx would count the
  client's mistake as the server's failure in every dashboard and canary analysis);
- a head not complete within ``head_timeout_s`` of its first byte (or of the connection, for its
  first request), or a body not complete within ``body_timeout_s`` of the end of its head: 408.

Each refusal closes the connection, as what follows cannot be trusted to frame a next request. The
deadlines cost a request two reads of the loop's clock: ``sweep``, one task per server, checks every
open connection once a second (a timer per request cost more than the rest of these bounds).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_PHRASES = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_headers: int = 100
    max_head_bytes: int = 64 * 1024
    head_timeout_s: float = 30.0
    body_timeout_s: float = 300.0


class _Refused(Exception):
    """Raised from a parser callback: stops httptools, which uvicorn then answers (see send_400_response)."""


def bounded_protocol(limits: HeadLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to hand uvicorn (``Config(http=...)``), bound to ``limits``, with its own set of
    live connections for ``sweep``."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits, "live": set()})


async def sweep(protocol: type[BoundedHttpToolsProtocol], every_s: float = 1.0) -> None:
    """Answer 408 on every connection of ``protocol`` whose head or body is overdue; runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every_s)
        now = loop.time()
        for conn in list(protocol.live):  # time_out closes, and a closed connection leaves the set
            what = conn.overdue(now)
            if what is not None:
                conn.time_out(what)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits = HeadLimits()
    live: ClassVar[set[BoundedHttpToolsProtocol]] = set()  # open connections, for ``sweep`` (one set per subclass)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_began: float | None = None  # the head being read began (None: none is)
        self._body_began: float | None = None  # the body being read began after its head (None: none is)
        self._head_bytes = 0
        self._refusal: tuple[int, str] | None = None

    # -- deadlines: timestamps here, one sweep a second for every connection (no timer per request) -----
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's signature
        super().connection_made(transport)
        self._head_began = self.loop.time()  # a connection that never sends a byte is bound too
        self.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        super().connection_lost(exc)

    def overdue(self, now: float) -> str | None:
        """What did not arrive in time (the head of the request coming in, or its body); None if on time."""
        limits = self.limits
        if self._head_began is not None and now - self._head_began > limits.head_timeout_s:
            return f"the request line and headers did not arrive within {limits.head_timeout_s:g}s"
        if self._body_began is not None and now - self._body_began > limits.body_timeout_s:
            return f"the request body did not arrive within {limits.body_timeout_s:g}s"
        return None

    def time_out(self, what: str) -> None:
        """408 (unless the app already answered) and close: what follows cannot frame a next request."""
        transport, in_body = self.transport, self._body_began is not None
        self._head_began = self._body_began = None
        if transport is None or transport.is_closing():
            return
        if not in_body or not self.cycle.response_started:  # never a second answer to one request
            transport.write(_answer(408, what + " (PIER_LIMITS__HEAD_TIMEOUT_S / BODY_TIMEOUT_S)"))
        transport.close()

    # -- parser callbacks ---------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_began is None:  # else the connection's first request: its clock runs from the connect
            self._head_began = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"the request line and headers are over the limit of {self.limits.max_head_bytes} "
                              "bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        headers = self.headers
        self._head_bytes += len(name) + len(value)
        if len(headers) > self.limits.max_headers:
            self._refuse(431, f"the request has more than {self.limits.max_headers} headers "
                              "(PIER_LIMITS__MAX_HEADERS)")
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"the request line and headers are over the limit of {self.limits.max_head_bytes} "
                              "bytes")
        if headers[-1][0] == b"transfer-encoding" and value.strip().lower() != b"chunked":
            self._refuse(400, f"Transfer-Encoding {value.decode('latin-1')!r} is not supported: send the body "
                              "chunked or with Content-Length (Content-Encoding: gzip is supported)")

    def on_headers_complete(self) -> None:
        self._head_began = None
        self._body_began = self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_began = None
        super().on_message_complete()

    # -- refusals ---------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        raise _Refused(message)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request that does not parse; ours when a bound stopped the parser."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            super().send_400_response(msg)
            return
        self._head_began = self._body_began = None
        self.transport.write(_answer(*refusal))
        self.transport.close()


def _answer(status: int, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return b"".join((b"HTTP/1.1 ", str(status).encode(), b" ", _PHRASES[status],
                     b"\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ",
                     str(len(body)).encode(), b"\r\n\r\n", body))
