"""``SqlDeploymentStore``: the ``DeploymentStore`` protocol over SQLAlchemy (SQLite or PostgreSQL).

The control plane's tables share the registry's database, engine set-up and migrations (see
``registry/sql``). Each public method is one short transaction returning frozen objects. Writes on
SQLite take the write lock up front (``BEGIN IMMEDIATE``); on PostgreSQL ``apply`` locks the
project row, then the deployment row. ``apply`` checks the project's quota inside that same
transaction, so a check and its write are one atomic step. Unique constraints back the locks up: a
writer that still loses a race (``IntegrityError``: two first applies of one name, two creators of
one project) rolls back and retries, then sees what the winner wrote. SQLAlchemy errors leave as
``modelpier.errors`` through ``registry.sql.dberrors.translate``.
"""

from __future__ import annotations

from typing import ParamSpec, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from modelpier.auth.quota import Limits
from modelpier.auth.sql.store import quota_limits
from modelpier.control.deployments.quota import require_within_quota
from modelpier.control.deployments.state import DeploymentRecord, Event, EventType, Revision
from modelpier.control.store import convert
from modelpier.control.store.tables import DEFAULT_PROJECT, DeploymentRow, EventRow, ProjectRow, RevisionRow
from modelpier.errors import Conflict, InvalidInput, NotFound
from modelpier.registry.sql.base import SqlStore, guarded
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelpier.spec.names import validate_name
from modelpier.spec.revision import RevisionKind

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

MAX_ATTEMPTS = 20
# Events kept per deployment: enough for `pier describe` and a post-mortem of a rollout, bounded so
# a crash-looping replica cannot grow the table without limit.
MAX_EVENTS = 500
_EVENT_TYPES = ("Normal", "Warning")




class SqlDeploymentStore(SqlStore):
    """Deployments, revisions and events in a SQL database. Thread-safe; share one per process."""


    # -- lookups --------------------------------------------------------------------------------

    @staticmethod
    def _project(session: Session, name: str, *, lock: bool = False) -> ProjectRow:
        query = select(ProjectRow).where(ProjectRow.name == name)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(f"project {name!r} does not exist", details={"project": name})
        return row

    def _deployment(self, session: Session, project: str, name: str, *, lock: bool = False) -> DeploymentRow:
        project_row = self._project(session, project)
        query = select(DeploymentRow).where(DeploymentRow.project_id == project_row.id,
                                            DeploymentRow.name == name)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(f"deployment {name!r} does not exist in project {project!r}",
                           details={"project": project, "deployment": name})
        return row

    # -- projects -------------------------------------------------------------------------------

    @guarded
    def ensure_project(self, name: str) -> None:
        validate_name(name, what="project name")

        def work(session: Session) -> None:
            # Insert-or-get: a concurrent creator makes our insert fail; the retry then finds it.
            if session.scalar(select(ProjectRow.id).where(ProjectRow.name == name)) is None:
                session.add(ProjectRow(name=name, created_at=self._clock.now()))
                session.flush()

        self._write_retrying(work, f"creating project {name!r}")

    @guarded
    def list_projects(self) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(ProjectRow.name).order_by(ProjectRow.name)))

    @guarded
    def delete_project(self, name: str) -> None:
        if name == DEFAULT_PROJECT:
            raise Conflict(f"project {DEFAULT_PROJECT!r} cannot be deleted: it is where deployments land "
                           "when no project is named")
        with self._write() as session:
            row = self._project(session, name)
            count = session.scalar(select(func.count()).select_from(DeploymentRow)
                                   .where(DeploymentRow.project_id == row.id)) or 0
            if count:
                raise Conflict(f"project {name!r} still has {count} deployment(s); delete them first",
                               details={"project": name, "deployments": count})
            session.delete(row)

    # -- desired state --------------------------------------------------------------------------

    @guarded
    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, *, resolved: dict[str, str],
              created_by: str, kind: RevisionKind, cause: str) -> tuple[DeploymentRecord, Revision, bool]:
        """See ``DeploymentStore.apply``; ``Forbidden`` when the new spec would take the project
        past its quota (``control.quota.require_within_quota``).

        Algorithm: in one write transaction, lock the project row (PostgreSQL; SQLite's whole-
        database write lock is already held), read the deployment row with a row lock, compare
        spec and resolved versions with the latest revision's (as canonical JSON), and either
        return unchanged or check the quota against the project's other deployments as they are
        now and insert the next revision. The project lock makes check and write one atomic step:
        two applies racing for the last replicas of a quota are checked one after the other, the
        second seeing the first. Two first applies of a new name collide on the (project, name)
        constraint; the loser retries and takes the update path.
        """
        validate_name(name, what="deployment name")
        wanted_spec, wanted_resolved = convert.spec_json(spec), dict(sorted(resolved.items()))

        def work(session: Session) -> tuple[DeploymentRecord, Revision, bool]:
            project_row = self._project(session, project, lock=True)
            row = session.scalar(select(DeploymentRow).where(
                DeploymentRow.project_id == project_row.id, DeploymentRow.name == name).with_for_update())
            now = self._clock.now()
            current: ModelDeploymentSpec | None = None
            if row is not None:
                if row.deleting:
                    raise Conflict(f"deployment {name!r} in project {project!r} is being deleted; apply it "
                                   "again once it is gone", details={"project": project, "deployment": name})
                latest = session.scalar(select(RevisionRow).where(
                    RevisionRow.deployment_id == row.id, RevisionRow.number == row.latest_revision))
                if latest is not None and latest.spec == wanted_spec and latest.resolved == wanted_resolved:
                    return (convert.record_out(project, row), convert.revision_out(project, name, latest), False)
                current = convert.revision_out(project, name, latest).spec if latest is not None else None
            self._admit(session, project_row, name, current, spec)
            if row is None:
                row = DeploymentRow(project_id=project_row.id, name=name, latest_revision=0, deleting=False,
                                    status=convert.status_json(ModelDeploymentStatus()),
                                    created_at=now, updated_at=now)
                session.add(row)
                session.flush()
            row.latest_revision += 1
            row.updated_at = now
            status = ModelDeploymentStatus.model_validate(row.status)
            row.status = convert.status_json(status.model_copy(update={"desired_revision": row.latest_revision}))
            revision = RevisionRow(deployment_id=row.id, number=row.latest_revision, spec=wanted_spec,
                                   resolved=wanted_resolved, created_at=now, created_by=created_by,
                                   kind=kind.value, cause=cause)
            session.add(revision)
            session.flush()
            return convert.record_out(project, row), convert.revision_out(project, name, revision), True

        return self._write_retrying(work, f"applying deployment {project}/{name}")

    @staticmethod
    def _admit(session: Session, project: ProjectRow, name: str, current: ModelDeploymentSpec | None,
               new: ModelDeploymentSpec) -> None:
        """The project's quota, checked inside the write transaction against what is stored now."""
        limits = Limits(**quota_limits(session, project.name))
        if limits == Limits():
            return  # unlimited: nothing to read
        others = session.scalars(
            select(RevisionRow.spec)
            .join(DeploymentRow, (RevisionRow.deployment_id == DeploymentRow.id)
                  & (RevisionRow.number == DeploymentRow.latest_revision))
            .where(DeploymentRow.project_id == project.id, DeploymentRow.name != name,
                   DeploymentRow.deleting.is_(False)))
        require_within_quota([convert.spec_in(s) for s in others], current, new, limits)

    @guarded
    def get(self, project: str, name: str) -> DeploymentRecord:
        with self._read() as session:
            return convert.record_out(project, self._deployment(session, project, name))

    @guarded
    def list_deployments(self, project: str | None = None) -> list[DeploymentRecord]:
        """See the protocol; ``NotFound`` for an unknown project."""
        query = select(ProjectRow.name, DeploymentRow).join(ProjectRow, DeploymentRow.project_id == ProjectRow.id)
        with self._read() as session:
            if project is not None:
                query = query.where(DeploymentRow.project_id == self._project(session, project).id)
            rows = session.execute(query.order_by(ProjectRow.name, DeploymentRow.name)).all()
            return [convert.record_out(p, row) for p, row in rows]

    @guarded
    def request_delete(self, project: str, name: str) -> None:
        """Mark the deployment for deletion; asking again is harmless."""
        with self._write() as session:
            row = self._deployment(session, project, name)
            if not row.deleting:
                row.deleting = True
                row.updated_at = self._clock.now()

    @guarded
    def revisions(self, project: str, name: str) -> list[Revision]:
        with self._read() as session:
            row = self._deployment(session, project, name)
            rows = session.scalars(select(RevisionRow).where(RevisionRow.deployment_id == row.id)
                                   .order_by(RevisionRow.number))
            return [convert.revision_out(project, name, r) for r in rows]

    @guarded
    def revision(self, project: str, name: str, number: int) -> Revision:
        with self._read() as session:
            row = self._deployment(session, project, name)
            found = session.scalar(select(RevisionRow).where(RevisionRow.deployment_id == row.id,
                                                             RevisionRow.number == number))
            if found is None:
                raise NotFound(f"deployment {project}/{name} has no revision {number} (latest is "
                               f"{row.latest_revision})", details={"revision": number})
            return convert.revision_out(project, name, found)

    @guarded
    def events(self, project: str, name: str, *, limit: int = 100) -> list[Event]:
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        with self._read() as session:
            row = self._deployment(session, project, name)
            rows = list(session.scalars(select(EventRow).where(EventRow.deployment_id == row.id)
                                        .order_by(EventRow.id.desc()).limit(limit)))
            return [convert.event_out(project, name, r) for r in reversed(rows)]

    # -- observed state -------------------------------------------------------------------------

    @guarded
    def set_status(self, project: str, name: str, status: ModelDeploymentStatus, *,
                   serving_revision: int | None) -> None:
        with self._write() as session:
            row = self._deployment(session, project, name)
            row.status = convert.status_json(status)
            row.serving_revision = serving_revision
            row.updated_at = self._clock.now()

    @guarded
    def add_event(self, project: str, name: str, type: EventType, reason: str, message: str, *,
                  revision: int | None = None) -> None:
        if type not in _EVENT_TYPES:
            raise InvalidInput(f"event type {type!r} is not one of {list(_EVENT_TYPES)}")
        with self._write() as session:
            row = self._deployment(session, project, name)
            session.add(EventRow(deployment_id=row.id, time=self._clock.now(), type=type, reason=reason,
                                 message=message, revision=revision))
            session.flush()
            # Keep the newest MAX_EVENTS: find the id just past them and delete it and older ones.
            cutoff = session.scalar(select(EventRow.id).where(EventRow.deployment_id == row.id)
                                    .order_by(EventRow.id.desc()).offset(MAX_EVENTS).limit(1))
            if cutoff is not None:
                session.execute(delete(EventRow).where(EventRow.deployment_id == row.id, EventRow.id <= cutoff))

    @guarded
    def purge(self, project: str, name: str) -> None:
        """See the protocol. Purging one that is already gone does nothing (the reconciler may retry)."""
        with self._write() as session:
            try:
                row = self._deployment(session, project, name)
            except NotFound:
                return
            # Revisions and events go with it (ON DELETE CASCADE); SQLite enforces it with foreign_keys=ON.
            session.execute(delete(DeploymentRow).where(DeploymentRow.id == row.id))
