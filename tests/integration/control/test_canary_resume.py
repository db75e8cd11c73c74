"""``CanaryDriver`` resuming after the control plane dies at each point of a canary, in process: real
SQLite stores and a real registry; the clock, the rollout (a stand-in for the reconciler marking the
latest revision observed) and the traffic are the test's. A "crash" is an exception no handler of the
driver catches, raised just before or just after a revision is made: nothing after it is written, as
when the process is killed. A second driver over fresh stores on the same database is the restarted
control plane."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.unit.control.fakes import FakeClock

from modelpier.control.canary.driver import CanaryDriver, CanaryRun
from modelpier.control.canary.state import CanaryRequest
from modelpier.control.deployments.service import ApplyResult, DeploymentService
from modelpier.control.store import SqlCanaryStore, SqlDeploymentStore
from modelpier.control.traffic.store import PredictorWindow, TrafficWindow
from modelpier.errors import Conflict, NotFound
from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind

DEPLOYMENT: dict[str, Any] = {"metadata": {"name": "iris"},
              "spec": {"predictors": [{"name": "main", "model": "iris:1"}], "canary": {"minRequests": 5}}}
REQUEST = CanaryRequest("iris:2", (10, 50, 100), interval_s=2)


class Crash(BaseException):
    """The control plane dies here: no handler of the driver catches it, so nothing after it runs."""


class CrashingService(DeploymentService):
    """The real service; dies once, before or after making the revision whose cause starts with ``cause``."""

    crash: tuple[str, str] | None = None

    def apply_revision(self, project: str, name: str, spec: ModelDeploymentSpec, *, created_by: str,
                       kind: RevisionKind, cause: str, pinned: Any = None) -> ApplyResult:
        when = self.crash
        hit = when is not None and cause.startswith(when[1])
        if hit and when is not None and when[0] == "before":
            self.crash = None
            raise Crash(cause)
        result = super().apply_revision(project, name, spec, created_by=created_by, kind=kind, cause=cause,
                                        pinned=pinned)
        if hit:
            self.crash = None
            raise Crash(cause)
        return result


class Traffic:
    """What the gateways report: both predictors answer 100 requests per interval; the canary's errors and
    requests are the test's."""

    retention_s = 900.0

    def __init__(self) -> None:
        self.canary_requests, self.canary_errors = 100, 0

    def window(self, project: str, deployment: str, window_s: float, step_s: float | None = None) -> TrafficWindow:
        return TrafficWindow(window_s, window_s, 0.0, {
            "main": PredictorWindow("main", requests=100, p99_s=0.010),
            "canary": PredictorWindow("canary", requests=self.canary_requests, errors=self.canary_errors,
                                      p99_s=0.010)})


@dataclass
class World:
    url: str
    service: CrashingService
    traffic: Traffic
    clock: FakeClock

    def driver(self) -> CanaryDriver:
        """A control plane's driver: its own canary store on the database, as a restarted process has."""
        async def sleep(seconds: float) -> None:
            # Time passes, and the "reconciler" rolls out whatever the latest revision is.
            self.clock.advance(seconds)
            store = self.service.store
            record = store.get("default", "iris")
            if record.status.observed_revision != record.latest_revision:
                store.set_status("default", "iris", record.status.model_copy(
                    update={"observed_revision": record.latest_revision}), serving_revision=record.latest_revision)
            await asyncio.sleep(0.001)

        return CanaryDriver(self.service, self.traffic, self.clock, SqlCanaryStore.open(self.url),  # type: ignore[arg-type]
                            sleep=sleep)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.service.events("default", "iris")]

    def predictors(self) -> list[tuple[str, str, int]]:
        view = self.service.get("default", "iris")
        return [(p.name, view.revision.resolved[p.name], p.weight) for p in view.revision.spec.predictors]

    def causes(self) -> list[str]:
        return [r.cause for r in self.service.revisions("default", "iris")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = load_settings(home=tmp_path)
    registry = build_registry(settings)
    for version in (1, 2):
        folder = tmp_path / f"artifact-{version}"
        folder.mkdir()
        (folder / "model.bin").write_bytes(f"weights {version}".encode())
        registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    service = CrashingService(store, registry)
    service.apply("default", DEPLOYMENT, "alice")
    yield World(settings.resolved_database_url, service, Traffic(), FakeClock())
    store.close()
    registry.close()


async def finished(run: CanaryRun) -> CanaryRun:
    assert run.task is not None
    await asyncio.wait_for(asyncio.shield(run.task), 60)
    return run


async def crashed(run: CanaryRun) -> None:
    assert run.task is not None
    with pytest.raises(Crash):
        await asyncio.wait_for(run.task, 60)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Wait for ``condition`` on the event loop (the driver runs there), polling; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


async def resume_one(world: World) -> tuple[CanaryDriver, CanaryRun]:
    driver = world.driver()
    [run] = await driver.resume()
    return driver, run


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_around_a_steps_revision_resumes_and_promotes(world: World, when: str) -> None:
    async def scenario() -> None:
        first = world.driver()
        world.service.crash = (when, "canary iris:2 at 50%")
        run = await first.start("default", "iris", REQUEST, "alice")
        await crashed(run)
        stored = first.get("default", "iris")
        assert (stored.phase, stored.step, stored.revision) == ("analyzing", 0, 2)
        assert stored.pending is not None
        assert stored.pending.cause == "canary iris:2 at 50%"
        assert [r.verdict for r in stored.results] == ["promote-step"]

        second, resumed = await resume_one(world)
        assert resumed.pending is not None  # as stored: the driver decides what it means
        assert second.get("default", "iris") is resumed  # GET shows the resumed run
        await finished(resumed)
        assert resumed.phase == "promoted", resumed.message
        assert [r.verdict for r in resumed.results] == ["promote-step", "promote-step"]
        # The step's revision was made exactly once, whether the crash came before or after it.
        assert world.causes() == ["applied", "canary iris:2 at 10%", "canary iris:2 at 50%", "canary iris:2 promoted"]
        assert world.predictors() == [("main", "iris:2", 100)]
        resumed_event = next(e for e in world.service.events("default", "iris") if e.reason == "CanaryResumed")
        assert ("making the revision it was about to make (canary iris:2 at 50%)" if when == "before"
                else "revision 3 was made before the restart") in resumed_event.message
        assert world.reasons().count("CanaryStep") == 1
        assert world.reasons()[-1] == "CanaryPromoted"
        stored_after = second.get("default", "iris")
        assert (stored_after.phase, stored_after.pending) == ("promoted", None)
        await first.close()
        await second.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_around_the_promotion_resumes_and_promotes(world: World, when: str) -> None:
    async def scenario() -> None:
        first = world.driver()
        world.service.crash = (when, "canary iris:2 promoted")
        await crashed(await first.start("default", "iris", CanaryRequest("iris:2", (20,), interval_s=2), "alice"))
        assert first.get("default", "iris").phase == "promoting"
        with pytest.raises(Conflict, match="being promoted"):
            await first.abort("default", "iris", "bob")
        second, resumed = await resume_one(world)
        await finished(resumed)
        assert resumed.phase == "promoted", resumed.message
        assert world.causes() == ["applied", "canary iris:2 at 20%", "canary iris:2 promoted"]
        assert world.predictors() == [("main", "iris:2", 100)]
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_a_crash_in_the_middle_of_a_rollback_finishes_it(world: World) -> None:
    async def scenario() -> None:
        world.traffic.canary_errors = 50
        first = world.driver()
        world.service.crash = ("before", "canary iris:2 rolled back")
        await crashed(await first.start("default", "iris", REQUEST, "alice"))
        assert world.predictors() == [("main", "iris:1", 90), ("canary", "iris:2", 10)]
        second, resumed = await resume_one(world)
        await finished(resumed)
        assert resumed.phase == "rolled-back"
        assert "failed at 10% on error rate" in resumed.message
        assert world.predictors() == [("main", "iris:1", 100)]
        assert world.reasons()[-1] == "CanaryRolledBack"
        await first.close()
        await second.close()

    asyncio.run(scenario())


def test_a_stopped_control_plane_resumes_where_it_stood_and_a_resumed_canary_can_be_aborted(world: World) -> None:
    async def scenario() -> None:
        world.traffic.canary_requests = 0  # the canary holds: inconclusive intervals
        first = world.driver()
        run = await first.start("default", "iris", REQUEST, "alice")
        await until(lambda: bool(run.results), "the canary's first judgement")
        await first.close()  # a graceful stop writes nothing: the run stays as it stood
        second, resumed = await resume_one(world)
        assert (resumed.phase, resumed.weight, resumed.revision, resumed.pending) == ("analyzing", 10, 2, None)
        aborted = await second.abort("default", "iris", "bob")
        assert aborted is resumed
        assert (aborted.phase, aborted.abort_by) == ("aborted", "bob")
        assert world.predictors() == [("main", "iris:1", 100)]
        assert world.reasons()[-1] == "CanaryAborted"
        resumed_event = next(e for e in world.service.events("default", "iris") if e.reason == "CanaryResumed")
        assert "at step 1 of 3 (10%, revision 2): a fresh 2s interval is judged" in resumed_event.message
        await second.close()
        third = world.driver()
        assert await third.resume() == []  # done runs are not resumed
        assert third.get("default", "iris").phase == "aborted"  # but still shown
        await third.close()

    asyncio.run(scenario())


def test_a_deployment_changed_while_the_control_plane_was_down_stops_the_canary_untouched(world: World) -> None:
    async def scenario() -> None:
        world.traffic.canary_requests = 0
        first = world.driver()
        run = await first.start("default", "iris", REQUEST, "alice")
        await until(lambda: bool(run.results), "the canary's first judgement")
        await first.close()
        changed = {"metadata": {"name": "iris"}, "spec": {"predictors": [{"name": "main", "model": "iris:2"}]}}
        world.service.apply("default", changed, "bob")
        second, resumed = await resume_one(world)
        await finished(resumed)
        assert resumed.phase == "stopped"
        assert "revision 3 by bob (applied) replaced the canary's revision 2" in resumed.message
        assert world.predictors() == [("main", "iris:2", 100)]  # left as bob made it
        assert world.reasons()[-1] == "CanaryStopped"
        await second.close()

    asyncio.run(scenario())


def test_a_refused_start_keeps_no_run(world: World) -> None:
    async def scenario() -> None:
        driver = world.driver()
        with pytest.raises(NotFound, match="iris:9"):
            await driver.start("default", "iris", CanaryRequest("iris:9", (10,), interval_s=2), "alice")
        with pytest.raises(NotFound, match="no canary of default/iris has run"):
            driver.get("default", "iris")
        restarted = world.driver()
        assert await restarted.resume() == []
        assert world.causes() == ["applied"]
        await driver.close()
        await restarted.close()

    asyncio.run(scenario())
