"""Listening sockets that accept every waiting connection at once, for servers on uvloop.

libuv accepts one connection per turn of the event loop (libuv#3696) and relies on the next turn
for the rest. On a loaded server a turn is long (it runs every ready request first), so a burst
of new connections is served one per turn: measured on a replica answering 8 busy connections, the
last of 56 new connections waited 200 ms for its first answer, against 30 ms with asyncio's own
loop, which accepts all that wait. A gateway that opens connections when its load grows meets
exactly this (docs/benchmarks.md). ``AcceptingServer`` reads the listening socket itself and
accepts until none waits, handing each socket to the loop as an accepted connection.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("modelpier.accept")

# Errors of one accept that say nothing about the listening socket: the peer gave up, or we are out
# of descriptors for now (the next readiness retries).
_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class AcceptingServer:
    """What ``loop.create_server`` returns (the parts servers use), over a greedy accept loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: Callable[[], asyncio.BaseProtocol], backlog: int) -> None:
        self._loop, self._sock, self._factory, self._backlog = loop, sock, protocol_factory, backlog
        self._pending: set[asyncio.Task[Any]] = set()
        self._serving = True
        sock.setblocking(False)
        sock.listen(backlog)
        loop.add_reader(sock.fileno(), self.accept_waiting)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._serving else ()

    def accept_waiting(self) -> int:
        """Accept every connection that waits (up to the backlog); how many were taken."""
        taken = 0
        while taken < self._backlog:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    log.warning("accepting a connection failed: %s", exc)
                    break
                raise
            taken += 1
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the loop's own servers do
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
            self._pending.add(task)
            task.add_done_callback(self._connected)
        return taken

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a new connection failed before it was served: %s", task.exception())

    def is_serving(self) -> bool:
        return self._serving

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def close(self) -> None:
        """Stop accepting and close the listening socket; connections already made stay."""
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    async def wait_closed(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def start_serving(self) -> None:
        return None


def listen(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A bound TCP socket for ``AcceptingServer`` (``OSError`` when the address is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def greedy_uvloop() -> asyncio.AbstractEventLoop:
    """A uvloop loop whose TCP servers made from a socket accept greedily (uvicorn's custom loop
    factory: ``loop="modelpier._lib.accepting:greedy_uvloop"``)."""
    import uvloop

    class GreedyLoop(uvloop.Loop):
        async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
                                port: Any = None, *, sock: socket.socket | None = None, backlog: int = 100,
                                ssl: Any = None, **kwargs: Any) -> Any:
            if sock is None or ssl is not None or sock.family not in (socket.AF_INET, socket.AF_INET6):
                return await super().create_server(protocol_factory, host, port, sock=sock, backlog=backlog,
                                                   ssl=ssl, **kwargs)
            return AcceptingServer(self, sock, protocol_factory, backlog)

    return GreedyLoop()
