"""``build_platform``: the one composition root, and its reconciler gated by leadership."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from modelpier.control.platform import Platform, build_platform
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
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
        leadership.leading.set()
        await eventually(lambda: platform.reconciler is not None, "a first term")
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


def test_a_standby_serves_the_leaders_routing_table_and_never_acts(tmp_path: Path) -> None:
    """Two control planes over one store and one backend (two replicas behind one Service): the standby
    observes and publishes the ready replicas of the desired state, so a gateway polling it routes too."""
    settings = Settings(home=tmp_path, platform={"reconcile_interval_s": 0.05})  # type: ignore[arg-type]
    spec = ModelDeploymentSpec.model_validate({"predictors": [{"name": "main", "model": "iris:1", "replicas": 1}]})

    def replicas(p: Platform) -> int:
        table = p.feed.current()
        route = table.deployments.get("default/iris") if table is not None else None
        return sum(len(r.replicas) for r in route.predictors) if route is not None else -1

    async def body() -> None:
        backend = FakeBackend()
        leading, standing_by = GatedLeadership(), GatedLeadership()
        leader = build_platform(settings, backend, leadership=leading, announce_admin_token=quiet)
        standby = build_platform(settings, backend, leadership=standing_by, announce_admin_token=quiet)
        leader.store.apply("default", "iris", spec, resolved={"main": "iris:1"}, created_by="t",
                           kind=RevisionKind.APPLIED, cause="applied")
        await standby.start()
        await eventually(lambda: replicas(standby) == 0, "the standby's table: iris, no replica yet")
        assert backend.replicas == {}  # it looked and did nothing
        assert standby.reconciler is None
        leading.leading.set()
        await leader.start()
        await eventually(lambda: bool(backend.replicas), "the leader starting a replica")
        backend.make_ready()
        await eventually(lambda: replicas(standby) == 1, "the standby routing to the leader's replica")
        assert replicas(leader) == 1
        assert len(backend.replicas) == 1
        for p in (standby, leader):
            await p.stop()
            await p.close()

    run(body)
