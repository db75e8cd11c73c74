"""``build_platform``: the one composition root, and its reconciler gated by leadership."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from modelpier.control.platform import Platform, build_platform
from modelpier.settings import Settings
from tests.unit.control.fakes import FakeBackend


class GatedLeadership:
    """Leads while the test says so."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()
        self.gone = asyncio.Event()
        self.released = 0

    async def acquire(self) -> None:
        await self.leading.wait()
        self.gone.clear()

    async def lost(self) -> None:
        await self.gone.wait()

    async def release(self) -> None:
        self.released += 1

    def lose(self) -> None:
        self.leading.clear()
        self.gone.set()


async def eventually(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def quiet(_token: str) -> None:
    return None


def test_without_a_backend_the_api_serves_and_nothing_reconciles(tmp_path: Path) -> None:
    platform = build_platform(Settings(home=tmp_path), None, announce_admin_token=quiet)
    assert "/api/v1/routing" in platform.app.openapi()["paths"]  # the route a gateway polls, on every control plane

    async def body() -> None:
        await platform.start()
        assert platform.reconciler is None
        await platform.stop()
        await platform.close()
        table = platform.feed.current()  # nothing runs here: an empty table, not "none yet" (503)
        assert table is not None
        assert not table.deployments

    run(body)


def test_the_reconciler_runs_only_while_leading_a_fresh_one_per_term(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, platform={"reconcile_interval_s": 0.05})  # type: ignore[arg-type]

    async def body() -> None:
        leadership = GatedLeadership()
        platform: Platform = build_platform(settings, FakeBackend(), leadership=leadership,
                                            announce_admin_token=quiet)
        await platform.start()
        await asyncio.sleep(0)
        assert platform.reconciler is None
        assert platform.feed.current() is None
        leadership.leading.set()
        await eventually(lambda: platform.feed.current() is not None, "a routing table published")
        first = platform.reconciler
        assert first is not None
        leadership.lose()
        await eventually(lambda: platform.reconciler is None, "reconciling stopped")
        leadership.leading.set()
        await eventually(lambda: platform.reconciler is not None, "a second term")
        assert platform.reconciler is not first
        await platform.stop()
        assert platform.reconciler is None
        assert leadership.released == 1
        await platform.close()

    run(body)
