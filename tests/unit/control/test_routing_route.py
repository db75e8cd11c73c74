"""``GET /api/v1/routing``: 503 before the first table, ETag and 304, long polls woken by a change."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from modelpier.control.errors import install_error_handlers
from modelpier.control.routes.routing import RoutingFeed, routing_router
from modelpier.spec.routing import DeploymentRoute, RoutingTable, table_from_wire

ONE = RoutingTable.of([DeploymentRoute("default", "iris", 1)])
TWO = RoutingTable.of([DeploymentRoute("default", "iris", 2)])


def app(feed: RoutingFeed) -> FastAPI:
    api = FastAPI()
    install_error_handlers(api)
    api.include_router(routing_router(feed), prefix="/api/v1")
    return api


async def _client(feed: RoutingFeed) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app(feed)), base_url="http://control")


def test_unpublished_table_is_503_then_200_with_etag_then_304() -> None:
    async def run() -> None:
        feed = RoutingFeed()
        async with await _client(feed) as client:
            first = await client.get("/api/v1/routing")
            assert first.status_code == 503
            assert first.json()["error"]["code"] == "service_unavailable"
            feed.publish(ONE)
            second = await client.get("/api/v1/routing")
            assert second.status_code == 200
            assert table_from_wire(second.json()) == ONE
            etag = second.headers["etag"]
            third = await client.get("/api/v1/routing", headers={"if-none-match": etag})
            assert (third.status_code, third.content, third.headers["etag"]) == (304, b"", etag)
    asyncio.run(run())


def test_a_held_poll_returns_as_soon_as_the_table_changes_or_the_feed_closes() -> None:
    async def run() -> None:
        feed = RoutingFeed()
        feed.publish(ONE)
        async with await _client(feed) as client:
            etag = (await client.get("/api/v1/routing")).headers["etag"]
            held = asyncio.create_task(client.get("/api/v1/routing", params={"wait": 20},
                                                  headers={"if-none-match": etag}))
            await asyncio.sleep(0.05)
            assert not held.done()
            feed.publish(RoutingTable.of([DeploymentRoute("default", "iris", 1)]))  # equal: no wake-up
            await asyncio.sleep(0.05)
            assert not held.done()
            feed.publish(TWO)
            changed = await asyncio.wait_for(held, 2)
            assert changed.status_code == 200
            assert table_from_wire(changed.json()) == TWO
            held = asyncio.create_task(client.get("/api/v1/routing", params={"wait": 20},
                                                  headers={"if-none-match": changed.headers["etag"]}))
            await asyncio.sleep(0.05)
            feed.close()
            assert (await asyncio.wait_for(held, 2)).status_code == 304
    asyncio.run(run())
