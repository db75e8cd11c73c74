"""The gateway's HTTP/1.1 server: one asyncio protocol per connection, requests parsed by httptools.

Why our own and not uvicorn (which served the gateway first): per request uvicorn builds an ASGI
scope, message dicts, an ``asyncio.Event`` and a task it tracks in a weak set, and writes the
head and the body of an answer with two system calls; on a core shared with the replicas that was
about a third of the gateway's time (docs/benchmarks.md). Here the parsed request goes to
``GatewayApp.admit`` as soon as its headers are in (unknown deployment, declared body over the
limit: answered at once, the body never read), the body is collected up to the deployment's limit,
and ``GatewayApp.respond``'s answer leaves in one ``transport.write``.

HTTP/1.1 as clients use it: keep-alive (a connection idle for ``keep_alive_s`` is closed),
pipelined requests answered in order, ``Expect: 100-continue``, chunked request bodies, HEAD,
HTTP/1.0 and ``Connection: close``. A request that does not parse gets 400, a request line and
headers over ``max_head_bytes`` or more than ``max_headers`` header lines 431, a body over the
deployment's ``limits.maxBodyBytes`` 413, a head not in within ``head_timeout_s`` of its first byte
or a body not in within ``body_timeout_s`` of its head 408 (however slowly the bytes trickle in:
one sweep a second checks every connection, no timer per request); each closes the connection,
since the rest of what the client sends cannot be trusted to frame a next request.
A caller that leaves mid-request does not cancel it (as under uvicorn): the answer is
dropped, the replica's work was already started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools
import orjson

from modelpier._lib.accepting import AcceptingServer, listen
from modelpier.errors import HeadersTooLarge, InvalidInput, PierError, ServiceUnavailable, http_status
from modelpier.gateway.app import Admitted, GatewayApp
from modelpier.gateway.dispatch import JSON
from modelpier.gateway.proxy import Answer

log = logging.getLogger("modelpier.gateway")

_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_QUEUED = 16  # pipelined requests held before the connection stops reading
_INLINE_BODY = 64 * 1024  # answers up to this size are joined with their head into one write
_DISCARD_LIMIT = 1024 * 1024  # body bytes read and dropped after an answer at admission, before closing
_STALLED_BODY_S = 60.0  # a request whose body stops arriving for this long is dropped
_LINGER_S = 2.0  # how long a refused connection keeps reading (and dropping) before it closes


class _Clock:
    """The ``date`` header, formatted once per second rather than per answer."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True).encode()
        return self._value


_clock = _Clock()


def encode_answer(answer: Answer, *, head_only: bool = False, close: bool = False, keep_alive: bool = False
                  ) -> list[bytes]:
    """Status line, headers and body as the bytes to write (one piece, or two for a large body)."""
    lines = [b"HTTP/1.1 ", str(answer.status).encode(), b" ", _PHRASES.get(answer.status, b"Unknown"),
             b"\r\ncontent-length: ", str(len(answer.body)).encode(), b"\r\ndate: ", _clock.date()]
    for name, value in answer.headers:
        lines += (b"\r\n", name, b": ", value)
    if close:
        lines.append(b"\r\nconnection: close")
    elif keep_alive:  # an HTTP/1.0 client that asked for it is told it got it
        lines.append(b"\r\nconnection: keep-alive")
    lines.append(b"\r\n\r\n")
    if head_only or not answer.body:
        return [b"".join(lines)]
    if len(answer.body) <= _INLINE_BODY:
        lines.append(answer.body)
        return [b"".join(lines)]
    return [b"".join(lines), answer.body]


def _refusal(error: PierError) -> Answer:
    return Answer(http_status(error), [(b"content-type", JSON)], orjson.dumps(error.to_dict()))


class _Request:
    """One request on its way in: admitted (or answered at admission), its body as it arrives."""

    __slots__ = ("admitted", "answer", "body", "head", "keep_alive", "size", "verdict", "version")

    def __init__(self, admitted: Admitted | Answer | None, *, head: bool = False, keep_alive: bool = False,
                 version: str = "1.1") -> None:
        self.admitted: Admitted | None = admitted if isinstance(admitted, Admitted) else None
        self.answer: Answer | None = admitted if isinstance(admitted, Answer) else None
        self.body: list[bytes] = []
        self.size = 0
        self.head = head
        self.keep_alive = keep_alive
        self.version = version
        self.verdict: asyncio.Future[Answer | None] | None = None  # the caller's check (auth.mode: token)


class _Connection(asyncio.Protocol):
    """One client connection. Requests are answered one at a time, in the order they came."""

    def __init__(self, server: GatewayHttpServer) -> None:
        self.server = server
        self.app = server.app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.last_active = time.monotonic()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._head_began: float | None = None  # when the request whose head is arriving began (None: none is)
        self._body_began = 0.0  # when the head of the request being read (``_reading``) was complete
        self._reading: _Request | None = None  # the request whose body is arriving
        self._ready: deque[_Request] = deque()  # complete, waiting their turn (pipelining)
        self._busy = False  # an answer is being made
        self._paused = False  # reading is paused (see _flow)
        self._held = False  # the caller of the request being read is being checked
        self._done = False  # nothing more is read: the last request is in (or the connection is gone)
        self._linger = False  # the last answer refuses a request that may still be arriving
        self._task: asyncio.Future[None] | None = None  # the answer being made (held: the loop keeps weak refs)

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's transports have its methods
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._reading = None
        self._ready.clear()
        self.server.connections.discard(self)
        self.server.settled()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self._done:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades (h2c, websockets) are not served: the request is answered as plain HTTP/1.1,
            # and the connection then closes, as the parser reads nothing after an upgrade.
            if self._reading is not None:
                self._last(_refusal(InvalidInput("protocol upgrades are not served by the gateway")))
            self._done = True
        except httptools.HttpParserError as exc:
            if not self._done:  # else a callback stopped the parser, and queued the answer
                self._last(_refusal(InvalidInput(f"the request does not parse as HTTP/1.1: {exc}")))

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._head_bytes = b"", [], 0
        self._head_began = self.last_active  # set by data_received: no clock read here

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > self.server.max_head_bytes:
            self._stop(_refusal(HeadersTooLarge(
                f"the request line and headers are over the gateway's limit of {self.server.max_head_bytes} bytes")))
        self._headers.append((name.lower(), value))
        if len(self._headers) > self.server.max_headers:
            self._stop(_refusal(HeadersTooLarge(
                f"the request has more than {self.server.max_headers} headers (PIER_LIMITS__MAX_HEADERS)")))

    def on_headers_complete(self) -> None:
        self._head_began = None
        self._body_began = self.last_active
        parser = self.parser
        method = parser.get_method().decode("latin-1")
        url = self._url
        if not url.startswith(b"/"):  # absolute form ("GET http://host/path")
            url = httptools.parse_url(url).path or b"/"
        path, _, query = url.partition(b"?")
        admitted = self.app.admit(method, path.decode("latin-1"), query, self._headers)
        request = _Request(admitted, head=method == "HEAD", keep_alive=parser.should_keep_alive(),
                           version=parser.get_http_version())
        self._reading = request
        # The app built the header dict for an admitted request; only a refusal needs one made here.
        named = request.admitted.named if request.admitted is not None else dict(self._headers)
        expects = named.get(b"expect", b"").lower() == b"100-continue"
        if request.answer is not None and (request.answer.status == 413 or expects):
            self._stop(request.answer)  # answered before the body: do not wait for it
        if request.admitted is not None and request.admitted.route.auth_mode == "token":
            # Read no more of the body until the caller is known: a stranger's bytes are not held.
            self._hold(True)
            request.verdict = asyncio.ensure_future(self._check_caller(request, expects))
        elif expects:
            self._continue()

    def on_body(self, body: bytes) -> None:
        request = self._reading
        if request is None:
            return
        request.size += len(body)
        if request.admitted is not None and request.size > request.admitted.limit:
            self._stop(request.admitted.too_large())
        elif request.answer is not None and request.size > _DISCARD_LIMIT:
            self._stop(request.answer)  # answered at admission; reading more of its body is waste
        elif request.answer is None:
            request.body.append(body)

    def on_message_complete(self) -> None:
        request, self._reading = self._reading, None
        if request is None:
            return
        if not request.keep_alive:
            self._done = True
        self._ready.append(request)
        self._next()

    # -- the caller's check ------------------------------------------------------------------------
    async def _check_caller(self, request: _Request, expects: bool) -> Answer | None:
        assert request.admitted is not None
        try:
            refusal = await self.app.check_caller(request.admitted)
        finally:
            self._hold(False)
        if refusal is None:
            if expects:
                self._continue()
        elif self._reading is request:  # its body is still to come: answer now, read nothing more
            request.answer = refusal
            self._last(refusal)
        return refusal

    def _hold(self, held: bool) -> None:
        """Stop (or restart) reading from the socket while the caller is checked."""
        self._held = held
        self._flow()

    def _continue(self) -> None:
        if not self._busy and not self._ready and self.transport is not None:  # never amid earlier answers
            self.transport.write(_CONTINUE)

    # -- answering --------------------------------------------------------------------------------
    def _stop(self, answer: Answer) -> None:
        """Answer the request being read with ``answer`` and read nothing more (raises to stop the parser)."""
        self._last(answer)
        raise httptools.HttpParserError("answered: the connection reads no more")

    def _last(self, answer: Answer) -> None:
        """Queue ``answer`` after the requests already in, as the connection's last."""
        self._reading = None
        self._done = True
        self._linger = True  # the client may still be sending: see _close_lingering
        self._ready.append(_Request(answer))
        self._next()

    def _next(self) -> None:
        while not self._busy and self._ready:
            request = self._ready.popleft()
            if request.answer is not None:
                self._write(request, request.answer)
                continue
            self._busy = True
            self._task = asyncio.ensure_future(self._respond(request))
        self._flow()

    def _flow(self) -> None:
        """Read while the caller is not being checked and few pipelined requests wait."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pause = self._held or len(self._ready) >= _MAX_QUEUED
        if pause != self._paused:
            self._paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    async def _respond(self, request: _Request) -> None:
        assert request.admitted is not None
        body = request.body
        try:
            refusal = await request.verdict if request.verdict is not None else None
            answer = refusal or await self.app.respond(request.admitted, body[0] if len(body) == 1 else b"".join(body),
                                                       caller_checked=request.verdict is not None)
        except Exception:  # the caller gets an id to quote, never a traceback
            request_id = request.admitted.request_id
            log.exception("request %s failed in the gateway", request_id)
            answer = _refusal(PierError(f"the gateway failed on request {request_id}; its log has the details",
                                        details={"requestId": request_id}))
        self._busy = False
        self._write(request, answer)
        self.server.settled()
        self._next()

    def _write(self, request: _Request, answer: Answer) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        last = not request.keep_alive or self.server.stopping or (self._done and not self._ready)
        pieces = encode_answer(answer, head_only=request.head, close=last,
                               keep_alive=request.version == "1.0" and not last)
        if len(pieces) == 1:
            transport.write(pieces[0])
        else:
            transport.writelines(pieces)
        self.last_active = time.monotonic()
        if last:
            self._done = True
            self._ready.clear()
            if self._linger:
                _close_lingering(transport)
            else:
                transport.close()

    # -- for the server ---------------------------------------------------------------------------
    def stale(self, now: float, keep_alive_s: float) -> bool:
        """Idle past the keep-alive time, or stalled mid-request past the body timeout."""
        if self._busy or self._ready:
            return False
        return now - self.last_active > (keep_alive_s if self._reading is None else _STALLED_BODY_S)

    def overdue(self, now: float) -> str | None:
        """What did not arrive in time: the head of the request coming in, or its body; None if on time."""
        server = self.server
        if self._head_began is not None and now - self._head_began > server.head_timeout_s:
            return f"the request line and headers did not arrive within {server.head_timeout_s:g}s"
        if self._reading is not None and now - self._body_began > server.body_timeout_s:
            return f"the request body did not arrive within {server.body_timeout_s:g}s"
        return None

    def time_out(self, what: str) -> None:
        """408 for the request that came too slowly (after the answers before it), then close."""
        if self._done:
            self.close()
            return
        self._head_began = None
        # 408 is the client's fault but no error of the platform's tree: a transport status, made here.
        message = what + " (PIER_LIMITS__HEAD_TIMEOUT_S / BODY_TIMEOUT_S)"
        body = {"error": {"code": "request_timeout", "message": message}}
        self._last(Answer(408, [(b"content-type", JSON)], orjson.dumps(body)))  # _done: nothing more is parsed

    @property
    def idle(self) -> bool:
        return not self._busy and not self._ready and self._reading is None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _close_lingering(transport: asyncio.Transport) -> None:
    """Half-close, drop what the client still sends for a moment, then close. Closing a socket with
    unread bytes makes the kernel answer RST, which can destroy the refusal (408, 400, 413, 431) before
    the client has read it; nginx's lingering_close exists for the same reason."""
    if transport.can_write_eof():
        transport.write_eof()
        asyncio.get_running_loop().call_later(_LINGER_S, transport.close)
    else:
        transport.close()


class GatewayHttpServer:
    """Serves a ``GatewayApp`` on one TCP port until ``stop``; the caller runs the app's start-up and
    shut-down around it (the gRPC port shares the app)."""

    def __init__(self, app: GatewayApp, *, keep_alive_s: float = 5.0, max_head_bytes: int = 64 * 1024,
                 max_headers: int = 100, head_timeout_s: float = 30.0, body_timeout_s: float = 300.0) -> None:
        self.app = app
        self.keep_alive_s = keep_alive_s
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s
        self.connections: set[_Connection] = set()
        self.port = 0
        self.stopping = False
        self._server: AcceptingServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._settled: asyncio.Event | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen (the app has started); ``ServiceUnavailable`` when the port cannot be bound."""
        try:
            sock = listen(host, port)
        except OSError as exc:
            raise ServiceUnavailable(f"the gateway cannot listen on {host}:{port}: {exc.strerror or exc}; choose "
                                     "another with `pier up --gateway-port` or `pier gateway --port` "
                                     "(setting gateway.port)",
                                     details={"host": host, "port": port}) from exc
        # Every waiting connection accepted per turn of the loop, not libuv's one (see _lib/accepting.py).
        self._server = AcceptingServer(asyncio.get_running_loop(), sock, lambda: _Connection(self), backlog=2048)
        self.port = int(sock.getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep(), name="close idle connections")

    async def _sweep(self) -> None:
        """Close connections idle for ``keep_alive_s`` or stalled mid-body (one timer for all, not one per
        request as uvicorn has)."""
        while True:
            await asyncio.sleep(min(1.0, self.keep_alive_s / 2))
            now = time.monotonic()
            for conn in list(self.connections):
                overdue = conn.overdue(now)
                if overdue is not None:
                    conn.time_out(overdue)
                elif conn.stale(now, self.keep_alive_s):
                    conn.close()

    def settled(self) -> None:
        if self._settled is not None and all(c.idle for c in self.connections):
            self._settled.set()

    async def stop(self, grace_s: float) -> None:
        """Stop listening, let requests in flight finish for up to ``grace_s``, close every connection.
        The app's own shut-down (draining shadows and cache writes) is the caller's next step."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._settled = asyncio.Event()
        self.settled()
        for conn in [c for c in self.connections if c.idle]:
            conn.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), grace_s)
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
