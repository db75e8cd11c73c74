"""``SqlCanaryStore``: the ``CanaryStore`` protocol (``control/canary/state.py``) over SQLAlchemy.

Canary runs live in ``canary_runs`` (migration 0005), one row per run, next to the deployment they
belong to: deleting the deployment deletes its runs. ``begin`` locks the deployment row while it
checks that no other run of it is going, so two starts racing (in one process or two) cannot both
win. Each method is one short transaction; SQLAlchemy errors leave as ``modelpier.errors``.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from modelpier.control.canary.state import DONE, CanaryRecord
from modelpier.control.store import convert
from modelpier.control.store.tables import CanaryRunRow, DeploymentRow, ProjectRow
from modelpier.errors import Conflict, NotFound
from modelpier.registry.sql.base import SqlStore, guarded

# Runs kept per deployment: the newest is what `GET .../canary` and `pier describe` show; a few older
# ones for a look back. Events tell the whole story anyway.
KEEP_RUNS = 20


def _deployment(session: Session, project: str, name: str, *, lock: bool = False) -> DeploymentRow:
    query = (select(DeploymentRow).join(ProjectRow, DeploymentRow.project_id == ProjectRow.id)
             .where(ProjectRow.name == project, DeploymentRow.name == name))
    row = session.scalar(query.with_for_update(of=DeploymentRow) if lock else query)
    if row is None:
        raise NotFound(f"deployment {name!r} does not exist in project {project!r}",
                       details={"project": project, "deployment": name})
    return row


class SqlCanaryStore(SqlStore):
    """Canary runs in a SQL database. Thread-safe; share one per process."""

    @guarded
    def begin(self, record: CanaryRecord) -> int:
        with self._write() as session:
            deployment = _deployment(session, record.project, record.deployment, lock=True)
            going = session.scalar(select(CanaryRunRow).where(CanaryRunRow.deployment_id == deployment.id,
                                                              CanaryRunRow.phase.not_in(DONE))
                                   .order_by(CanaryRunRow.id.desc()).limit(1))
            if going is not None:
                raise Conflict(f"a canary of {record.project}/{record.deployment} is already running (step "
                               f"{going.step + 1} of {len(going.steps)}); abort it first (DELETE .../canary, `pier "
                               f"rollout canary {record.deployment} --abort`)",
                               details={"deployment": record.deployment})
            row = CanaryRunRow(deployment_id=deployment.id, **convert.canary_values(record))
            session.add(row)
            session.flush()
            cutoff = session.scalar(select(CanaryRunRow.id).where(CanaryRunRow.deployment_id == deployment.id)
                                    .order_by(CanaryRunRow.id.desc()).offset(KEEP_RUNS).limit(1))
            if cutoff is not None:
                session.execute(delete(CanaryRunRow).where(CanaryRunRow.deployment_id == deployment.id,
                                                           CanaryRunRow.id <= cutoff))
            return row.id

    @guarded
    def save(self, record: CanaryRecord) -> None:
        with self._write() as session:
            session.execute(update(CanaryRunRow).where(CanaryRunRow.id == record.id)
                            .values(**convert.canary_values(record)))

    @guarded
    def discard(self, run_id: int) -> None:
        with self._write() as session:
            session.execute(delete(CanaryRunRow).where(CanaryRunRow.id == run_id))

    @guarded
    def latest(self, project: str, name: str) -> CanaryRecord | None:
        with self._read() as session:
            deployment = _deployment(session, project, name)
            row = session.scalar(select(CanaryRunRow).where(CanaryRunRow.deployment_id == deployment.id)
                                 .order_by(CanaryRunRow.id.desc()).limit(1))
            return convert.canary_out(project, name, row) if row is not None else None

    @guarded
    def unfinished(self) -> list[CanaryRecord]:
        query = (select(ProjectRow.name, DeploymentRow.name, CanaryRunRow)
                 .join(DeploymentRow, CanaryRunRow.deployment_id == DeploymentRow.id)
                 .join(ProjectRow, DeploymentRow.project_id == ProjectRow.id)
                 .where(CanaryRunRow.phase.not_in(DONE)).order_by(CanaryRunRow.id))
        with self._read() as session:
            return [convert.canary_out(project, name, row) for project, name, row in session.execute(query).all()]
