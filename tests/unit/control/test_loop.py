"""The reconcile loop over fakes: status and events written, failures isolated and counted."""

from __future__ import annotations

import asyncio

from modelpier.control.reconciler.loop import Reconciler
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
from modelpier.spec.routing import RoutingTable, RoutingTableCell
from tests.unit.control.fakes import FakeBackend, FakeClock, FakeStore

SPEC = ModelDeploymentSpec.model_validate({"predictors": [{"name": "main", "model": "iris:1", "replicas": 2}]})


def setup(ports: int = 10) -> tuple[FakeStore, FakeBackend, Reconciler, RoutingTableCell]:
    clock = FakeClock()
    store, backend, cell = FakeStore(clock), FakeBackend(clock, ports=ports), RoutingTableCell()
    store.apply("default", "iris", SPEC, resolved={"main": "iris:1"}, created_by="t", kind=RevisionKind.APPLIED,
                cause="applied")
    return store, backend, Reconciler(store, backend, clock, endpoint_base="http://gw:8700", publish=cell.set), cell


def test_a_deployment_is_started_reported_and_routed() -> None:
    store, backend, reconciler, cell = setup()
    asyncio.run(reconciler.reconcile_once())
    assert len(backend.replicas) == 2
    assert store.reasons("default", "iris").count("ReplicaStarted") == 2
    backend.make_ready()
    asyncio.run(reconciler.reconcile_once())
    record = store.get("default", "iris")
    assert record.serving_revision == 1
    assert record.status.url == "http://gw:8700/default/iris"
    assert record.status.ready_replicas == 2
    route = cell.get().get("default", "iris")
    assert route is not None
    assert route.ready_replicas == 2
    assert reconciler.failures == {}


def test_failures_are_counted_and_the_next_pass_recovers() -> None:
    _, backend, reconciler, _ = setup()
    backend.observe_error = RuntimeError("backend down")
    asyncio.run(reconciler.reconcile_once())
    assert reconciler.failures["observe"] == 1
    backend.observe_error = None
    asyncio.run(reconciler.reconcile_once())
    assert len(backend.replicas) == 2


def test_port_exhaustion_is_a_condition_and_an_event() -> None:
    store, _, reconciler, _ = setup(ports=1)
    asyncio.run(reconciler.reconcile_once())
    asyncio.run(reconciler.reconcile_once())
    status = store.get("default", "iris").status
    degraded = status.condition("Degraded")
    assert degraded is not None
    assert degraded.reason == "StartFailed"
    assert "no free port" in degraded.message
    assert store.reasons("default", "iris").count("StartFailed") == 1


def test_run_stops_when_asked() -> None:
    _, backend, reconciler, cell = setup()

    async def main() -> None:
        task = asyncio.create_task(reconciler.run())
        for _ in range(500):  # the first pass starts replicas
            if backend.replicas:
                break
            await asyncio.sleep(0.01)
        reconciler.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert cell.get() != RoutingTable()
