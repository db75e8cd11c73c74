"""SQLAlchemy 2 typed mappings of the control plane's tables: projects, deployments, revisions, events,
canary runs.

Private to ``control/store``: ``SqlDeploymentStore`` turns rows into the frozen objects of
``control/deployments/state.py``, ``SqlCanaryStore`` into those of ``control/canary/state.py``. The tables live
in the registry's database and its one Alembic chain (migrations ``0002_deployments``,
``0005_canary_runs`` and ``0007_revision_kind``), with the registry's naming convention, but on their own
``MetaData``: the registry sits below the control plane and must not know these tables. A test
compares the migrated schema against both ``MetaData`` objects. Change these mappings only together
with a new migration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelpier.registry.sql.tables import NAME_LEN, NAMING_CONVENTION, UTCDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# The project every deployment lands in when none is named; created by migration 0002.
DEFAULT_PROJECT = "default"
REASON_LEN = 128
USER_LEN = 255
# A model reference or resolved version: name (63) ":" version or alias (63).
REF_LEN = 128
PHASE_LEN = 16
# A RevisionKind value ("canary-rollback" is the longest today), with room for new kinds.
KIND_LEN = 32


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    created_at: Mapped[datetime]


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No cascade: a project with deployments cannot be deleted (the store says Conflict).
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    # Highest revision number given out; numbers come from this counter, and incrementing it locks
    # the row, so concurrent applies of one deployment queue up (as the registry's last_version).
    latest_revision: Mapped[int] = mapped_column(Integer)
    serving_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[dict[str, Any]]  # ModelDeploymentStatus, by alias (camelCase)
    deleting: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RevisionRow(Base):
    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("deployment_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]]  # ModelDeploymentSpec, by alias (camelCase), as the API shows it
    resolved: Mapped[dict[str, Any]]  # predictor -> "model:version"
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(USER_LEN))
    kind: Mapped[str] = mapped_column(String(KIND_LEN))  # spec.revision.RevisionKind (migration 0007)
    cause: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    __tablename__ = "events"
    # Events are read newest-first per deployment and pruned by id; this index serves both.
    __table_args__ = (Index(None, "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    time: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(REASON_LEN))
    message: Mapped[str] = mapped_column(Text)
    revision: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CanaryRunRow(Base):
    """One progressive canary of a deployment (``control/canary/state.CanaryRecord``), written at every
    transition so a restarted control plane resumes it (migration 0005)."""

    __tablename__ = "canary_runs"
    # The newest run of a deployment is what `GET .../canary` shows, and pruning goes by id: one index.
    __table_args__ = (Index(None, "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    predictor: Mapped[str] = mapped_column(String(NAME_LEN))
    stable: Mapped[str] = mapped_column(String(NAME_LEN))
    target: Mapped[str] = mapped_column(String(REF_LEN))  # the request's `to`
    version: Mapped[str] = mapped_column(String(REF_LEN))
    stable_version: Mapped[str] = mapped_column(String(REF_LEN))
    steps: Mapped[list[int]] = mapped_column(JSON)
    # Whole milliseconds: an integer compares equal on every dialect, where a float column's type does not.
    interval_ms: Mapped[int] = mapped_column(Integer)
    started_by: Mapped[str] = mapped_column(String(USER_LEN))
    started_at: Mapped[datetime]
    phase: Mapped[str] = mapped_column(String(PHASE_LEN))
    step: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # StepResult, windows by alias (camelCase)
    abort_by: Mapped[str | None] = mapped_column(String(USER_LEN), nullable=True)
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # PendingApply
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
