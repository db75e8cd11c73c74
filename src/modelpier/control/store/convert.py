"""Rows of ``control/store/tables.py`` to and from the frozen objects of ``control/state.py``.

Specs and statuses are stored as JSON by their wire (camelCase) names, the same text the API
shows, and validated again on the way out, so a row the current schema cannot read fails loudly.
"""

from __future__ import annotations

from typing import Any

from modelpier.control.state import DeploymentRecord, Event, EventType, Revision
from modelpier.control.store.tables import DeploymentRow, EventRow, RevisionRow
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus


def spec_json(spec: ModelDeploymentSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


def status_json(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True)


def record_out(project: str, row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        project=project, name=row.name, latest_revision=row.latest_revision,
        serving_revision=row.serving_revision, status=ModelDeploymentStatus.model_validate(row.status),
        deleting=row.deleting, created_at=row.created_at, updated_at=row.updated_at)


def revision_out(project: str, deployment: str, row: RevisionRow) -> Revision:
    return Revision(
        project=project, deployment=deployment, number=row.number,
        spec=ModelDeploymentSpec.model_validate(row.spec), resolved={str(k): str(v) for k, v in row.resolved.items()},
        created_at=row.created_at, created_by=row.created_by, cause=row.cause)


def event_out(project: str, deployment: str, row: EventRow) -> Event:
    kind: EventType = "Warning" if row.type == "Warning" else "Normal"
    return Event(project=project, deployment=deployment, time=row.time, type=kind, reason=row.reason,
                 message=row.message, revision=row.revision)
