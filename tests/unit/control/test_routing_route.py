"""``GET /api/v1/routing``: 503 before the first table, ETag and 304, long polls woken by a change (of the
table, or of the auth epoch it carries)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
from fastapi import FastAPI

from modelpier.auth.epoch import AuthEpoch
from modelpier.control.api.errors import install_error_handlers
from modelpier.control.api.routes.routing import RoutingFeed, routing_router
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


def test_the_table_carries_the_auth_epoch_and_a_held_poll_wakes_when_it_moves() -> None:
    async def run() -> None:
        epoch = AuthEpoch(7)
        feed = RoutingFeed(epoch)
        feed.publish(ONE)  # the reconciler knows nothing of epochs: its tables say 0
        async with await _client(feed) as client:
            first = await client.get("/api/v1/routing")
            assert first.json()["authEpoch"] == 7
            held = asyncio.create_task(client.get("/api/v1/routing", params={"wait": 20},
                                                  headers={"if-none-match": first.headers["etag"]}))
            await asyncio.sleep(0.05)
            assert not held.done()
            # A revocation on a request worker thread advances the epoch; the poll answers at once.
            await asyncio.to_thread(epoch.advance, 8)
            changed = await asyncio.wait_for(held, 2)
            assert changed.status_code == 200
            assert table_from_wire(changed.json()) == replace(ONE, auth_epoch=8)
            assert changed.headers["etag"] != first.headers["etag"]
            # The reconciler's next pass keeps the epoch; an older value never wins.
            feed.publish(TWO)
            assert (await client.get("/api/v1/routing")).json()["authEpoch"] == 8
            assert not epoch.advance(3)
            assert (await client.get("/api/v1/routing")).json()["authEpoch"] == 8
    asyncio.run(run())


def test_an_epoch_that_moves_while_nobody_polls_is_in_the_next_answer() -> None:
    async def run() -> None:
        epoch = AuthEpoch()
        feed = RoutingFeed(epoch)
        feed.publish(ONE)
        async with await _client(feed) as client:
            etag = (await client.get("/api/v1/routing")).headers["etag"]
            epoch.advance(1)
            again = await client.get("/api/v1/routing", headers={"if-none-match": etag})
            assert again.status_code == 200
            assert again.json()["authEpoch"] == 1
    asyncio.run(run())
