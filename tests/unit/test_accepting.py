"""``AcceptingServer``: every waiting connection is taken in one turn, then served by the protocol."""

from __future__ import annotations

import asyncio
import socket

import pytest

from modelpier._lib.accepting import AcceptingServer, greedy_uvloop, listen


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


def test_one_turn_accepts_every_waiting_connection_and_each_is_served() -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        sock = listen("127.0.0.1", 0)
        server = AcceptingServer(loop, sock, Echo, backlog=128)
        loop.remove_reader(sock.fileno())  # drive it by hand: no turn of the loop accepts anything
        port = sock.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # handshakes done by the kernel
        try:
            assert server.accept_waiting() == 20  # libuv would have taken one
            assert server.accept_waiting() == 0
            for i, client in enumerate(clients):
                client.setblocking(False)
                await loop.sock_sendall(client, b"hello %d" % i)
                assert await asyncio.wait_for(loop.sock_recv(client, 64), 5) == b"hello %d" % i
        finally:
            for client in clients:
                client.close()
            server.close()
            await server.wait_closed()
        assert server.sockets == ()
        assert not server.is_serving()
    asyncio.run(go())


def test_a_closed_server_refuses_new_connections() -> None:
    async def go() -> None:
        sock = listen("127.0.0.1", 0)
        port = sock.getsockname()[1]
        server = AcceptingServer(asyncio.get_running_loop(), sock, Echo, backlog=8)
        server.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
    asyncio.run(go())


def test_uvloop_servers_made_from_a_socket_accept_greedily() -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        sock = listen("127.0.0.1", 0)
        server = await loop.create_server(Echo, sock=sock)
        assert isinstance(server, AcceptingServer)
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()
        server.close()
    loop = greedy_uvloop()
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()


def test_listen_on_a_taken_port_is_an_os_error() -> None:
    first = listen("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="in use"):
            listen("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()
