"""``ControlPlaneVerifier``: cached token checks, dropped the moment the routing table's auth epoch moves.

The control plane is a small in-memory fake behind httpx's ``MockTransport``: which tokens it allows
right now, and how often it was asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest

from modelpier.errors import ServiceUnavailable
from modelpier.gateway.verifier import ControlPlaneVerifier
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api.gateway import VERIFY_PATH

ALICE = "pier_alice-token"
BOB = "pier_bob-token"


class FakeControlPlane:
    def __init__(self) -> None:
        self.allowed = {ALICE, BOB}
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None  # when set, answers wait for it (a slow control plane)
        self.arrived = asyncio.Condition()  # notified as each check arrives
        self.down = False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1" + VERIFY_PATH
        assert request.headers["authorization"] == "Bearer pier_gateway"
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        token = json.loads(request.content)["token"]
        allowed = token in self.allowed  # decided now, before any wait: as the real one would
        self.asked.append(token)
        async with self.arrived:
            self.arrived.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        return httpx.Response(200, json={"allowed": allowed})


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def _until_asked(plane: FakeControlPlane, asked: list[str]) -> None:
    async with plane.arrived:
        await asyncio.wait_for(plane.arrived.wait_for(lambda: plane.asked == asked), 5)


def _verifier(plane: FakeControlPlane, clock: Clock | None = None) -> ControlPlaneVerifier:
    return ControlPlaneVerifier("http://control", "pier_gateway", api=_api(plane.handle), monotonic=clock or Clock())


def _api(handle: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> AsyncControlClient:
    """The client the verifier builds for itself, over the fake control plane."""
    return AsyncControlClient("http://control", token="pier_gateway", retries=0, transport=httpx.MockTransport(handle))


def test_answers_are_cached_until_the_auth_epoch_moves() -> None:
    async def run() -> None:
        plane = FakeControlPlane()
        verifier = _verifier(plane)
        assert await verifier.verify("acme", "iris", ALICE, epoch=4)
        plane.allowed.discard(ALICE)  # revoked on the control plane
        assert await verifier.verify("acme", "iris", ALICE, epoch=4)  # still the cached allow
        assert plane.asked == [ALICE]
        # The new routing table carries the advanced epoch: every cached answer goes.
        assert not await verifier.verify("acme", "iris", ALICE, epoch=5)
        assert plane.asked == [ALICE, ALICE]
        assert not await verifier.verify("acme", "iris", ALICE, epoch=5)  # the denial is cached in turn
        assert plane.asked == [ALICE, ALICE]
        await verifier.aclose()

    asyncio.run(run())


def test_any_change_of_epoch_flushes_also_a_lower_one() -> None:
    async def run() -> None:
        plane = FakeControlPlane()
        verifier = _verifier(plane)
        assert await verifier.verify("acme", "iris", BOB, epoch=7)
        # A control plane whose database was replaced starts counting again: still a different epoch.
        assert await verifier.verify("acme", "iris", BOB, epoch=0)
        assert plane.asked == [BOB, BOB]
        await verifier.aclose()

    asyncio.run(run())


def test_an_answer_from_before_a_flush_is_not_cached() -> None:
    async def run() -> None:
        plane = FakeControlPlane()
        verifier = _verifier(plane)
        plane.gate = asyncio.Event()
        # A check starts under epoch 1 and is answered "allowed" before the revocation ...
        slow = asyncio.create_task(verifier.verify("acme", "iris", ALICE, epoch=1))
        await _until_asked(plane, [ALICE])
        # ... then ALICE is revoked and a request under the new table's epoch flushes the cache.
        plane.allowed.discard(ALICE)
        other = asyncio.create_task(verifier.verify("acme", "iris", BOB, epoch=2))
        await _until_asked(plane, [ALICE, BOB])
        plane.gate.set()
        assert await slow  # that request itself was let through: it was checked before the revocation
        assert await other
        plane.gate = None
        # but its stale "allowed" was not cached: the next request asks again and is refused.
        assert not await verifier.verify("acme", "iris", ALICE, epoch=2)
        assert plane.asked == [ALICE, BOB, ALICE]
        await verifier.aclose()

    asyncio.run(run())


def test_allows_expire_and_the_control_plane_is_asked_again() -> None:
    async def run() -> None:
        plane, clock = FakeControlPlane(), Clock()
        verifier = _verifier(plane, clock)
        assert await verifier.verify("acme", "iris", ALICE)
        assert await verifier.verify("acme", "iris", ALICE)  # cached allow, within its 10 s
        plane.allowed.discard(ALICE)
        clock.t += 11
        assert not await verifier.verify("acme", "iris", ALICE)  # expired: asked again, and now refused
        assert plane.asked == [ALICE, ALICE]
        await verifier.aclose()

    asyncio.run(run())


def test_an_outage_keeps_recent_answers_refuses_unknown_tokens_with_503_and_logs_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        plane, clock = FakeControlPlane(), Clock()
        verifier = _verifier(plane, clock)
        assert await verifier.verify("acme", "iris", ALICE)
        plane.allowed.discard(BOB)
        assert not await verifier.verify("acme", "iris", BOB)
        plane.down = True
        clock.t += 11  # both answers are past their cache time
        asked = len(plane.asked)
        with caplog.at_level(logging.INFO, logger="modelpier.gateway"):
            for _ in range(50):
                assert await verifier.verify("acme", "iris", ALICE)  # checked 11 s ago: still admitted
                assert not await verifier.verify("acme", "iris", BOB)  # and still refused
                with pytest.raises(ServiceUnavailable) as unknown:
                    await verifier.verify("acme", "iris", "pier_never-seen")
                assert unknown.value.details["retry_after_s"] >= 1
            assert len(plane.asked) == asked  # the breaker: one failed probe, then no dialling for a while
            clock.t += 300  # past the staleness limit: no answer stands any more
            with pytest.raises(ServiceUnavailable):
                await verifier.verify("acme", "iris", ALICE)
            plane.down = False
            clock.t += 11  # past the longest backoff
            assert await verifier.verify("acme", "iris", ALICE)
        outage = [r for r in caplog.records if "cannot check tokens" in r.getMessage()]
        recovery = [r for r in caplog.records if "answers token checks again" in r.getMessage()]
        assert (len(outage), len(recovery)) == (1, 1)
        await verifier.aclose()

    asyncio.run(run())


def test_a_token_revoked_before_an_outage_is_not_admitted_from_stale_answers() -> None:
    async def run() -> None:
        plane, clock = FakeControlPlane(), Clock()
        verifier = _verifier(plane, clock)
        assert await verifier.verify("acme", "iris", ALICE, epoch=1)
        plane.down = True
        clock.t += 11
        assert await verifier.verify("acme", "iris", ALICE, epoch=1)
        with pytest.raises(ServiceUnavailable):  # the table says access shrank: what was known is dropped
            await verifier.verify("acme", "iris", ALICE, epoch=2)
        await verifier.aclose()

    asyncio.run(run())


def test_an_error_status_from_the_control_plane_is_an_outage_too() -> None:
    async def run() -> None:
        calls = []

        async def broken(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            return httpx.Response(502)

        verifier = ControlPlaneVerifier("http://control", "pier_gateway", api=_api(broken), monotonic=Clock())
        for _ in range(5):
            with pytest.raises(ServiceUnavailable):
                await verifier.verify("acme", "iris", ALICE)
        assert len(calls) == 1
        await verifier.aclose()

    asyncio.run(run())
