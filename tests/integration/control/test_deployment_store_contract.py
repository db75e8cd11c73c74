"""The ``DeploymentStore`` contract, run against SQLite and a real PostgreSQL server.

Projects, idempotent applies, revision numbering under races, deletes and purges, status and
events, and the migrated schema: every implementation must pass the same suite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from modelpier.auth.sql import SqlAuthStore
from modelpier.auth.sql.tables import metadata as auth_metadata
from modelpier.control.store import SqlDeploymentStore
from modelpier.control.store.store import MAX_EVENTS
from modelpier.control.store.tables import metadata as control_metadata
from modelpier.errors import Conflict, Forbidden, InvalidName, NotFound
from modelpier.registry.sql import current_revision, head_revision, open_engine
from modelpier.registry.sql.tables import metadata as registry_metadata
from modelpier.spec.deployment import Condition, ModelDeploymentSpec, ModelDeploymentStatus, PredictorStatus
from modelpier.spec.revision import RevisionKind


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pier.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlDeploymentStore]:
    s = SqlDeploymentStore.open(database_url)
    yield s
    s.close()


def spec(model: str = "iris:production", replicas: int = 1) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"predictors": [{"model": model, "replicas": replicas}]})


def apply(store: SqlDeploymentStore, name: str = "iris", *, replicas: int = 1, version: int = 1,
          project: str = "default") -> tuple[int, bool]:
    _, revision, created = store.apply(project, name, spec(replicas=replicas), resolved={"main": f"iris:{version}"},
                                       created_by="tester", kind=RevisionKind.APPLIED, cause="applied")
    return revision.number, created


# -- projects ---------------------------------------------------------------------------------------


def test_default_project_exists_and_projects_are_created_once(store: SqlDeploymentStore) -> None:
    assert store.list_projects() == ["default"]
    store.ensure_project("acme")
    store.ensure_project("acme")
    assert store.list_projects() == ["acme", "default"]
    with pytest.raises(InvalidName, match="project name"):
        store.ensure_project("Acme Corp")


def test_delete_project_rules(store: SqlDeploymentStore) -> None:
    store.ensure_project("acme")
    apply(store, project="acme")
    with pytest.raises(Conflict, match="still has 1 deployment"):
        store.delete_project("acme")
    store.purge("acme", "iris")
    store.delete_project("acme")
    assert store.list_projects() == ["default"]
    with pytest.raises(NotFound, match="project 'acme' does not exist"):
        store.delete_project("acme")
    with pytest.raises(Conflict, match="cannot be deleted"):
        store.delete_project("default")


# -- apply and revisions ----------------------------------------------------------------------------


def test_apply_is_idempotent_and_numbers_revisions(store: SqlDeploymentStore) -> None:
    assert apply(store) == (1, True)
    assert apply(store) == (1, False)  # same spec, same versions
    assert apply(store, replicas=2) == (2, True)  # spec changed
    assert apply(store, replicas=2, version=2) == (3, True)  # only the resolved version changed
    assert apply(store, replicas=2, version=2) == (3, False)
    assert apply(store) == (4, True)  # back to the first content: still a new revision
    revisions = store.revisions("default", "iris")
    assert [r.number for r in revisions] == [1, 2, 3, 4]
    assert revisions[0].spec == spec()
    assert revisions[0].resolved == {"main": "iris:1"}
    assert (revisions[0].created_by, revisions[0].kind, revisions[0].cause) == \
        ("tester", RevisionKind.APPLIED, "applied")
    assert revisions[0].created_at.tzinfo is not None
    assert store.revision("default", "iris", 2).spec.predictors[0].replicas == 2
    record = store.get("default", "iris")
    assert (record.latest_revision, record.serving_revision, record.deleting) == (4, None, False)
    assert record.status.desired_revision == 4
    assert record.created_at <= record.updated_at


def test_specs_are_stored_by_wire_names(store: SqlDeploymentStore, database_url: str) -> None:
    store.apply("default", "iris", ModelDeploymentSpec.model_validate(
        {"predictors": [{"model": "iris:production", "followAlias": True, "batching": {"maxBatchSize": 8}}]}),
        resolved={"main": "iris:1"}, created_by="t", kind=RevisionKind.APPLIED, cause="applied")
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            raw = conn.execute(text("SELECT spec FROM revisions")).scalar_one()
    finally:
        engine.dispose()
    assert "followAlias" in str(raw)
    assert "maxBatchSize" in str(raw)
    got = store.revision("default", "iris", 1).spec.predictors[0]
    assert got.follow_alias
    assert got.batching is not None
    assert got.batching.max_batch_size == 8


def test_apply_needs_a_project_and_refuses_while_deleting(store: SqlDeploymentStore) -> None:
    with pytest.raises(NotFound, match="project 'nope' does not exist"):
        apply(store, project="nope")
    apply(store)
    store.request_delete("default", "iris")
    store.request_delete("default", "iris")  # asking twice is harmless
    assert store.get("default", "iris").deleting
    with pytest.raises(Conflict, match="being deleted"):
        apply(store, replicas=3)


def test_unknown_things_are_not_found_naming_them(store: SqlDeploymentStore) -> None:
    for call in (lambda: store.get("default", "ghost"), lambda: store.revisions("default", "ghost"),
                 lambda: store.events("default", "ghost"), lambda: store.request_delete("default", "ghost"),
                 lambda: store.add_event("default", "ghost", "Normal", "X", "y")):
        with pytest.raises(NotFound, match="deployment 'ghost' does not exist in project 'default'"):
            call()
    apply(store)
    with pytest.raises(NotFound, match="no revision 9"):
        store.revision("default", "iris", 9)
    with pytest.raises(NotFound, match="project 'nope'"):
        store.list_deployments("nope")


def test_list_deployments_by_project_and_all(store: SqlDeploymentStore) -> None:
    store.ensure_project("acme")
    apply(store, "b")
    apply(store, "a")
    apply(store, "a", project="acme")
    assert [(r.project, r.name) for r in store.list_deployments("default")] == [("default", "a"), ("default", "b")]
    assert [(r.project, r.name) for r in store.list_deployments()] == \
        [("acme", "a"), ("default", "a"), ("default", "b")]


def test_purge_removes_history_and_a_new_apply_starts_over(store: SqlDeploymentStore) -> None:
    apply(store)
    apply(store, replicas=2)
    store.add_event("default", "iris", "Normal", "RevisionCreated", "x")
    store.request_delete("default", "iris")
    store.purge("default", "iris")
    store.purge("default", "iris")  # already gone: nothing to do
    with pytest.raises(NotFound):
        store.get("default", "iris")
    assert apply(store) == (1, True)
    assert store.events("default", "iris") == []


# -- observed state ---------------------------------------------------------------------------------


def test_status_round_trips(store: SqlDeploymentStore) -> None:
    apply(store)
    when = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    status = ModelDeploymentStatus(
        observed_revision=1, desired_revision=1, ready_replicas=2, desired_replicas=2, url="http://x/default/iris",
        conditions=[Condition(type="Ready", status="True", reason="ReplicasReady", last_transition_time=when)],
        predictors=[PredictorStatus(name="main", model_version="iris:1", ready_replicas=2, desired_replicas=2,
                                    weight=100)])
    store.set_status("default", "iris", status, serving_revision=1)
    record = store.get("default", "iris")
    assert record.status == status
    assert record.serving_revision == 1
    assert record.status.conditions[0].last_transition_time == when


def test_events_newest_last_limited_and_pruned(store: SqlDeploymentStore) -> None:
    apply(store)
    store.add_event("default", "iris", "Warning", "ReplicaCrashed", "exit 1", revision=1)
    got = store.events("default", "iris")
    assert [(e.type, e.reason, e.message, e.revision) for e in got] == [("Warning", "ReplicaCrashed", "exit 1", 1)]
    assert got[0].time.tzinfo is not None
    for i in range(MAX_EVENTS + 20):
        store.add_event("default", "iris", "Normal", "Tick", str(i))
    kept = store.events("default", "iris", limit=10_000)
    assert len(kept) == MAX_EVENTS
    assert kept[-1].message == str(MAX_EVENTS + 19)
    assert [e.message for e in store.events("default", "iris", limit=2)] == \
        [str(MAX_EVENTS + 18), str(MAX_EVENTS + 19)]


# -- concurrency -------------------------------------------------------------------------------------


def test_concurrent_first_applies_of_one_spec_make_one_revision(store: SqlDeploymentStore) -> None:
    threads = 8
    start = threading.Barrier(threads)

    def work(_: int) -> tuple[int, bool]:
        start.wait()
        return apply(store, "race")

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, range(threads)))
    assert sorted(results) == [(1, False)] * (threads - 1) + [(1, True)]
    assert [r.number for r in store.revisions("default", "race")] == [1]


def test_concurrent_different_applies_get_consecutive_numbers(store: SqlDeploymentStore) -> None:
    threads = 8
    start = threading.Barrier(threads)

    def work(i: int) -> tuple[int, bool]:
        start.wait()
        return apply(store, "race", replicas=i + 1)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, range(threads)))
    assert all(created for _, created in results)
    assert sorted(n for n, _ in results) == list(range(1, threads + 1))
    assert store.get("default", "race").latest_revision == threads


# -- quotas -----------------------------------------------------------------------------------------


def _limit(database_url: str, project: str, **limits: int) -> None:
    auth = SqlAuthStore.open(database_url)
    try:
        auth.set_limits(project, limits)
    finally:
        auth.close()


def test_apply_checks_the_quota_and_shrinking_always_passes(store: SqlDeploymentStore, database_url: str) -> None:
    store.ensure_project("acme")
    _limit(database_url, "acme", replicas=3, deployments=2)
    assert apply(store, "a", replicas=2, project="acme") == (1, True)
    with pytest.raises(Forbidden, match=r"replicas: limit 3, would use 4 \(over by 1\)") as refused:
        apply(store, "b", replicas=2, project="acme")
    assert refused.value.details["exceeded"] == [{"quota": "replicas", "limit": 3, "would_use": 4, "over_by": 1}]
    with pytest.raises(NotFound):
        store.get("acme", "b")  # nothing was written
    assert apply(store, "b", replicas=1, project="acme") == (1, True)
    with pytest.raises(Forbidden, match="deployments: limit 2, would use 3"):
        apply(store, "c", project="acme")
    # Replacing counts only the difference; being marked for deletion frees the share.
    assert apply(store, "a", replicas=1, project="acme") == (2, True)
    store.request_delete("acme", "b")
    assert apply(store, "c", replicas=2, project="acme") == (1, True)
    # Limits lowered below usage: a scale-down still passes, a scale-up is refused.
    _limit(database_url, "acme", replicas=1)
    assert apply(store, "c", replicas=1, project="acme") == (2, True)
    with pytest.raises(Forbidden):
        apply(store, "a", replicas=2, project="acme")
    # Other projects have their own quota.
    assert apply(store, "a", replicas=5) == (1, True)


def test_racing_applies_cannot_overrun_a_quota(store: SqlDeploymentStore, database_url: str) -> None:
    """Every thread applies a new 1-replica deployment at once; the quota admits exactly 3 of them.

    The check reads the other deployments inside the write transaction, under the project's lock:
    were it a read before the write, all of them would see room for one more.
    """
    store.ensure_project("acme")
    _limit(database_url, "acme", replicas=3)
    threads = 8
    start = threading.Barrier(threads)

    def work(i: int) -> bool:
        start.wait()
        try:
            apply(store, f"d{i}", project="acme")
        except Forbidden:
            return False
        return True

    with ThreadPoolExecutor(threads) as pool:
        admitted = list(pool.map(work, range(threads)))
    assert sum(admitted) == 3
    assert len(store.list_deployments("acme")) == 3


# -- schema -----------------------------------------------------------------------------------------


def test_schema_is_at_head_and_matches_both_mappings(store: SqlDeploymentStore, database_url: str) -> None:
    assert current_revision(database_url) == head_revision() == "0007"
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, [registry_metadata, control_metadata, auth_metadata]) == []  # type: ignore[arg-type]
    finally:
        engine.dispose()
