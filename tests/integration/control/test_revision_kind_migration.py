"""Migration 0007 gives every stored revision its ``kind``, read once from the cause the control plane
wrote before kinds existed, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from modelpier.control.store import SqlDeploymentStore
from modelpier.registry.sql import current_revision, head_revision, open_engine
from modelpier.registry.sql.migrate import alembic_config
from modelpier.spec.revision import RevisionKind

SPEC = '{"predictors": [{"name": "main", "model": "iris:production", "followAlias": true}]}'

# (created_by, cause) as 0006-era control planes wrote them, and the kind each must get.
OLD_REVISIONS: list[tuple[str, str, RevisionKind]] = [
    ("alice", "applied", RevisionKind.APPLIED),
    ("modelpier", "alias iris:production moved from 1 to 2", RevisionKind.ALIAS_FOLLOW),
    ("modelpier", "alias iris:production moved from 2 to 3; alias wine:staging moved from nothing to 4",
     RevisionKind.ALIAS_FOLLOW),
    ("bob", "rollback to revision 2", RevisionKind.ROLLBACK),
    ("reconciler", "automatic rollback: revision 5 was not ready within 120s", RevisionKind.AUTO_ROLLBACK),
    ("alice", "canary iris:7 at 10%", RevisionKind.CANARY_STEP),
    ("alice", "canary iris:7 rolled back: error rate: canary 50% (5 of 10) vs stable 0%", RevisionKind.CANARY_ROLLBACK),
    ("alice", "canary iris:7 at 50%", RevisionKind.CANARY_STEP),
    ("alice", "canary iris:7 promoted", RevisionKind.CANARY_PROMOTE),
    # A model named like a rollback: the old loose match took this for one, its kind is what wrote it.
    ("modelpier", "alias quick-rollback:production moved from 1 to 2", RevisionKind.ALIAS_FOLLOW),
    # Text no writer makes any more: what the old readers made of it (a rollback pins versions).
    ("carol", "Rolled back by hand", RevisionKind.ROLLBACK),
    ("carol", "something else", RevisionKind.APPLIED),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pier.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


def _write_old_rows(database_url: str) -> None:
    """Revisions as a 0006 database holds them: no kind column, only the cause."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            project = conn.execute(text("SELECT id FROM projects WHERE name = 'default'")).scalar_one()
            conn.execute(text(
                "INSERT INTO deployments (project_id, name, latest_revision, serving_revision, status, deleting, "
                "created_at, updated_at) VALUES (:p, 'iris', :n, :n, '{}', false, :t, :t)"),
                {"p": project, "n": len(OLD_REVISIONS), "t": now})
            deployment = conn.execute(text("SELECT id FROM deployments WHERE name = 'iris'")).scalar_one()
            conn.execute(text(
                "INSERT INTO revisions (deployment_id, number, spec, resolved, created_at, created_by, cause) "
                "VALUES (:d, :n, :spec, :resolved, :t, :by, :cause)"),
                [{"d": deployment, "n": i + 1, "spec": SPEC, "resolved": '{"main": "iris:1"}', "t": now, "by": by,
                  "cause": cause} for i, (by, cause, _) in enumerate(OLD_REVISIONS)])
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["at start-up", "alembic command"])
def test_upgrading_from_0006_gives_every_revision_its_kind_from_its_cause(database_url: str, how: str) -> None:
    command.upgrade(alembic_config(database_url), "0006")
    _write_old_rows(database_url)
    if how == "alembic command":
        command.upgrade(alembic_config(database_url), "head")
    store = SqlDeploymentStore.open(database_url)  # migrates to head when the command did not
    try:
        assert current_revision(database_url) == head_revision() == "0007"
        revisions = store.revisions("default", "iris")
        assert [(r.cause, r.kind) for r in revisions] == [(cause, kind) for _, cause, kind in OLD_REVISIONS]
        # The rows stay whole, and new revisions take the kind they are written with.
        assert revisions[0].resolved == {"main": "iris:1"}
        assert revisions[0].created_by == "alice"
        _, made, created = store.apply("default", "iris", revisions[0].spec, resolved={"main": "iris:9"},
                                       created_by="dave", kind=RevisionKind.ROLLBACK, cause="rollback to revision 1")
        assert created
        assert store.revision("default", "iris", made.number).kind is RevisionKind.ROLLBACK
    finally:
        store.close()


def test_the_kind_column_goes_on_downgrade_and_comes_back_filled(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0006")
    _write_old_rows(database_url)
    command.upgrade(alembic_config(database_url), "head")
    command.downgrade(alembic_config(database_url), "0006")
    command.upgrade(alembic_config(database_url), "head")
    store = SqlDeploymentStore.open(database_url)
    try:
        assert [r.kind for r in store.revisions("default", "iris")] == [kind for _, _, kind in OLD_REVISIONS]
    finally:
        store.close()
