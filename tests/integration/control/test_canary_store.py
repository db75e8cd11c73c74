"""``SqlCanaryStore`` (the ``CanaryStore`` protocol) against SQLite and a real PostgreSQL server: a run
round-trips with its judgements and pending apply, one run of a deployment goes at a time (also when
two starts race), finished runs are pruned, and runs go with their deployment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from modelpier.control.canary.state import CanaryRecord, PendingApply, StepResult
from modelpier.control.store import SqlCanaryStore, SqlDeploymentStore
from modelpier.control.store.canary import KEEP_RUNS
from modelpier.errors import Conflict, NotFound
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
from modelpier.spec.traffic import PredictorTrafficWindow

T0 = 1_790_000_000.25


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pier.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[SqlDeploymentStore, SqlCanaryStore]]:
    deployments = SqlDeploymentStore.open(database_url)
    canaries = SqlCanaryStore.open(database_url)
    spec = ModelDeploymentSpec.model_validate({"predictors": [{"model": "iris:1"}]})
    for name in ("iris", "other"):
        deployments.apply("default", name, spec, resolved={"main": "iris:1"}, created_by="alice",
                          kind=RevisionKind.APPLIED, cause="applied")
    yield deployments, canaries
    canaries.close()
    deployments.close()


def window(name: str, requests: int, p99_ms: float | None) -> PredictorTrafficWindow:
    return PredictorTrafficWindow(name=name, requests=requests, errors=1, request_rate=2.5, error_rate=1 / requests,
                                  p50_ms=None if p99_ms is None else p99_ms / 2, p99_ms=p99_ms, in_flight=0,
                                  waiting=0, cache_hit_rate=0.0)


def record(deployment: str = "iris", **changes: Any) -> CanaryRecord:
    base = CanaryRecord(project="default", deployment=deployment, predictor="canary", stable="main", to="iris:2",
                        version="", stable_version="iris:1", steps=(10, 50, 100), interval_s=1.5, started_by="alice",
                        started_at=T0, phase="progressing", step=0, weight=10, revision=1,
                        message="starting: making the first revision", updated_at=T0,
                        pending=PendingApply("start", cause="canary iris:2 at 10%", weight=10))
    return replace(base, **changes)


def test_a_run_round_trips_with_its_judgements_and_pending_apply(
        stores: tuple[SqlDeploymentStore, SqlCanaryStore]) -> None:
    _, store = stores
    assert store.latest("default", "iris") is None
    first = record()
    run_id = store.begin(first)
    assert store.latest("default", "iris") == replace(first, id=run_id)
    assert store.unfinished() == [replace(first, id=run_id)]
    judged = StepResult(10, "hold", "inconclusive: 3 canary request(s)", window("main", 40, 9.5),
                        window("canary", 3, None), T0 + 2)
    later = replace(first, id=run_id, version="iris:2", revision=2, phase="analyzing", message="judging",
                    results=(judged,), abort_by="bob", updated_at=T0 + 2.5,
                    pending=PendingApply("rollback", phase="aborted", message="aborted by bob at 10%"))
    store.save(later)
    assert store.latest("default", "iris") == later
    ended = replace(later, phase="aborted", pending=None, finished_at=T0 + 3, updated_at=T0 + 3)
    store.save(ended)
    assert store.latest("default", "iris") == ended
    assert store.unfinished() == []


def test_one_run_of_a_deployment_at_a_time(stores: tuple[SqlDeploymentStore, SqlCanaryStore]) -> None:
    _, store = stores
    going = store.begin(record())
    with pytest.raises(Conflict, match="a canary of default/iris is already running"):
        store.begin(record())
    other = store.begin(record("other"))  # another deployment is its own
    store.save(replace(record(), id=going, phase="promoted", pending=None, finished_at=T0 + 10))
    again = store.begin(record(to="iris:3"))
    assert again > going
    latest = store.latest("default", "iris")
    assert latest is not None
    assert (latest.id, latest.to) == (again, "iris:3")
    assert [r.id for r in store.unfinished()] == [other, again]  # oldest first


def test_two_racing_starts_cannot_both_win(stores: tuple[SqlDeploymentStore, SqlCanaryStore]) -> None:
    _, store = stores
    barrier, outcomes = threading.Barrier(6), []

    def start() -> None:
        barrier.wait()
        try:
            outcomes.append(store.begin(record()))
        except Conflict:
            outcomes.append(-1)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes).count(-1) == 5
    assert len(store.unfinished()) == 1


def test_finished_runs_are_pruned_and_discard_removes_one(stores: tuple[SqlDeploymentStore, SqlCanaryStore]) -> None:
    _, store = stores
    ids = []
    for _ in range(KEEP_RUNS + 3):
        run_id = store.begin(record())
        store.save(replace(record(), id=run_id, phase="rolled-back", pending=None, finished_at=T0))
        ids.append(run_id)
    newest = store.begin(record())
    store.discard(newest)  # a start whose first revision was refused
    store.discard(newest)  # gone already: nothing happens
    latest = store.latest("default", "iris")
    assert latest is not None
    assert latest.id == ids[-1]
    store.save(replace(record(), id=newest, phase="analyzing"))  # a run that is gone is not written back
    assert store.unfinished() == []


def test_runs_go_with_their_deployment(stores: tuple[SqlDeploymentStore, SqlCanaryStore]) -> None:
    deployments, store = stores
    store.begin(record())
    with pytest.raises(NotFound, match="deployment 'nope' does not exist in project 'default'"):
        store.begin(record("nope"))
    with pytest.raises(NotFound):
        store.latest("default", "nope")
    deployments.request_delete("default", "iris")
    deployments.purge("default", "iris")
    assert store.unfinished() == []
    with pytest.raises(NotFound):
        store.latest("default", "iris")
