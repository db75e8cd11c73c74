"""A canary and a followed alias (issue 14): the README's order — move the alias, undo, start a canary —
no longer stops the canary; an alias that moves while a canary runs rolls out after it ends; and a
split left behind by someone else's change is removed by an abort. In process, on the harness of
``test_canary_resume`` (real SQLite stores and registry; the test's clock, rollout and traffic)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.control.test_canary_resume import CrashingService, Traffic, World, finished, until
from tests.unit.control.fakes import FakeClock

from modelpier.control.canary.state import CanaryRequest
from modelpier.control.store import SqlDeploymentStore
from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.settings import load_settings

FOLLOWING = {"metadata": {"name": "iris"},
             "spec": {"predictors": [{"name": "main", "model": "iris:production", "followAlias": True}],
                      "canary": {"minRequests": 5}}}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, Registry]]:
    settings = load_settings(home=tmp_path)
    registry = build_registry(settings)
    for version in (1, 2, 3):
        folder = tmp_path / f"artifact-{version}"
        folder.mkdir()
        (folder / "model.bin").write_bytes(f"weights {version}".encode())
        registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    registry.set_alias("iris", "production", 1)
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    service = CrashingService(store, registry)
    service.apply("default", FOLLOWING, "alice")
    yield World(settings.resolved_database_url, service, Traffic(), FakeClock()), registry
    store.close()
    registry.close()


def test_the_readme_order_keeps_the_canary_and_a_move_meanwhile_waits_for_its_end(
        world: tuple[World, Registry]) -> None:
    w, registry = world

    async def scenario() -> None:
        registry.set_alias("iris", "production", 2)
        assert [r.revision.number for r in w.service.refresh_aliases()] == [2]
        w.service.rollback("default", "iris", None, created_by="alice")  # back to iris:1
        w.traffic.canary_requests = 0  # the canary holds: it keeps running while the alias is polled
        driver = w.driver()
        run = await driver.start("default", "iris", CanaryRequest("iris:3", (10, 50), interval_s=2), "alice")
        await until(lambda: bool(run.results), "the canary's first judgement")
        # The undone move is not made again under the canary (with or without the hold).
        assert w.service.refresh_aliases() == []
        registry.set_alias("iris", "production", 3)
        assert w.service.refresh_aliases(driver.running) == []  # held while the canary runs
        assert w.service.refresh_aliases(driver.running) == []
        assert w.reasons().count("AliasMoveDeferred") == 1
        assert not run.done
        await driver.abort("default", "iris", "alice")
        assert run.phase == "aborted"
        [after] = w.service.refresh_aliases(driver.running)  # the canary ended: the move rolls out
        assert after.revision.cause == "alias iris:production moved from 1 to 3"
        assert w.predictors() == [("main", "iris:3", 100)]
        await driver.close()

    asyncio.run(scenario())


def test_an_abort_removes_a_split_that_someone_elses_change_left_behind(world: tuple[World, Registry]) -> None:
    w, _ = world

    async def scenario() -> None:
        w.traffic.canary_requests = 0
        driver = w.driver()
        run = await driver.start("default", "iris", CanaryRequest("iris:2", (10, 50), interval_s=2), "alice")
        await until(lambda: bool(run.results), "the canary's first judgement")
        kept = {"metadata": {"name": "iris"}, "spec": {"predictors": [
            {"name": "main", "model": "iris:1", "weight": 90, "replicas": 2},
            {"name": "canary", "model": "iris:2", "weight": 10}]}}
        w.service.apply("default", kept, "bob")
        await finished(run)
        assert run.phase == "stopped"
        assert "predictor canary is still in the spec: `pier rollout canary iris --abort` removes it" in run.message
        aborted = await driver.abort("default", "iris", "alice")
        assert aborted.phase == "aborted"
        assert w.predictors() == [("main", "iris:1", 100)]
        assert w.reasons()[-1] == "CanaryAborted"
        with pytest.raises(Exception, match="not running"):
            await driver.abort("default", "iris", "alice")  # nothing left over now
        await driver.close()

    asyncio.run(scenario())
