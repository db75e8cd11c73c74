"""The gateway's routing-table client: follows ETags, and keeps the last table when the control
plane is unreachable or answers with something else than a table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from modelpier.gateway.table_client import RoutingTableClient
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.spec.routing import DeploymentRoute, RoutingTable, encode_table

ONE = RoutingTable.of([DeploymentRoute("default", "iris", 1)])


class Control:
    """A fake control plane: answers from ``table`` or with ``failure``; records If-None-Match."""

    def __init__(self) -> None:
        self.table: RoutingTable | None = ONE
        self.failure: Exception | int | None = None
        self.seen: list[str | None] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("if-none-match"))
        if isinstance(self.failure, Exception):
            raise self.failure
        if self.failure is not None:
            return httpx.Response(self.failure, json={"error": {"code": "x", "message": "no"}})
        assert self.table is not None
        body, etag = encode_table(self.table)
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag})
        return httpx.Response(200, content=body, headers={"etag": etag, "content-type": "application/json"})


def client_for(control: Control) -> RoutingTableClient:
    return RoutingTableClient("http://control", api=_api(control.handle))


def _api(handle: Callable[[httpx.Request], httpx.Response]) -> AsyncControlClient:
    return AsyncControlClient("http://control", retries=0, transport=httpx.MockTransport(handle))


def test_first_table_then_304s_carrying_the_etag() -> None:
    async def run() -> None:
        control = Control()
        client = client_for(control)
        assert not client.synced
        assert client.get() == RoutingTable()
        assert await client.poll_once() == "changed"
        assert client.synced
        assert client.get() == ONE
        assert await client.poll_once() == "unchanged"
        assert control.seen == [None, encode_table(ONE)[1]]
        assert (client.fetches, client.unchanged) == (1, 1)
        await client.aclose()
    asyncio.run(run())


def test_the_last_table_is_kept_while_the_control_plane_is_away_or_broken() -> None:
    async def run() -> None:
        control = Control()
        client = client_for(control)
        await client.poll_once()
        for failure in (httpx.ConnectError("refused"), 503, 500):
            control.failure = failure
            assert await client.poll_once() == "failed"
            assert client.get() == ONE
            assert client.describe()["error"]
        control.failure, control.table = None, RoutingTable.of([DeploymentRoute("default", "iris", 2)])
        assert await client.poll_once() == "changed"
        assert client.get().get("default", "iris") == DeploymentRoute("default", "iris", 2)
        assert client.describe()["error"] is None
        await client.aclose()
    asyncio.run(run())


def test_a_malformed_body_is_a_failure_not_an_empty_table() -> None:
    async def run() -> None:
        def handle(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"unexpected": True}, headers={"etag": '"x"'})

        client = RoutingTableClient("http://control", api=_api(handle))
        assert await client.poll_once() == "failed"
        assert not client.synced
        await client.aclose()
    asyncio.run(run())
