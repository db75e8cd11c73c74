"""Rows of ``control/store/tables.py`` to and from the frozen objects of ``control/deployments/state.py`` and
``control/canary/state.py``.

Specs and statuses are stored as JSON by their wire (camelCase) names, the same text the API
shows, and validated again on the way out, so a row the current schema cannot read fails loudly.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, cast, get_args

from modelpier.control.canary.state import CanaryPhase, CanaryRecord, PendingApply, StepResult
from modelpier.control.deployments.state import DeploymentRecord, Event, EventType, Revision
from modelpier.control.store.tables import CanaryRunRow, DeploymentRow, EventRow, RevisionRow
from modelpier.errors import PierError
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelpier.spec.revision import RevisionKind
from modelpier.spec.traffic import PredictorTrafficWindow


def spec_json(spec: ModelDeploymentSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


def spec_in(data: dict[str, Any]) -> ModelDeploymentSpec:
    """A stored spec. Revisions written before batching was on by default recorded ``batching: null``
    for "off": read it as ``enabled: false``, so an upgrade changes neither behaviour nor replicas."""
    predictors = data.get("predictors")
    if isinstance(predictors, list) and any(isinstance(p, dict) and "batching" in p and p["batching"] is None
                                            for p in predictors):
        data = {**data, "predictors": [
            {**p, "batching": {"enabled": False}} if isinstance(p, dict) and "batching" in p and p["batching"] is None
            else p for p in predictors]}
    return ModelDeploymentSpec.model_validate(data)


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
        spec=spec_in(row.spec), resolved={str(k): str(v) for k, v in row.resolved.items()},
        created_at=row.created_at, created_by=row.created_by, kind=_kind(row.kind), cause=row.cause)


def _kind(value: str) -> RevisionKind:
    try:
        return RevisionKind(value)
    except ValueError:
        raise PierError(f"a stored revision has the kind {value!r}, which this control plane does not know") from None


def event_out(project: str, deployment: str, row: EventRow) -> Event:
    kind: EventType = "Warning" if row.type == "Warning" else "Normal"
    return Event(project=project, deployment=deployment, time=row.time, type=kind, reason=row.reason,
                 message=row.message, revision=row.revision)


# -- canary runs ------------------------------------------------------------------------------------


_PHASES = frozenset(get_args(CanaryPhase))


def _phase(value: str) -> CanaryPhase:
    if value not in _PHASES:
        raise PierError(f"a stored canary run has the phase {value!r}, which this control plane does not know")
    return cast(CanaryPhase, value)


def _time(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _result_json(r: StepResult) -> dict[str, Any]:
    return {"weight": r.weight, "verdict": r.verdict, "reason": r.reason, "at": r.at,
            "stable": r.stable.model_dump(mode="json", by_alias=True),
            "canary": r.canary.model_dump(mode="json", by_alias=True)}


def _result_out(data: dict[str, Any]) -> StepResult:
    return StepResult(weight=int(data["weight"]), verdict=str(data["verdict"]), reason=str(data["reason"]),
                      stable=PredictorTrafficWindow.model_validate(data["stable"]),
                      canary=PredictorTrafficWindow.model_validate(data["canary"]), at=float(data["at"]))


def canary_values(record: CanaryRecord) -> dict[str, Any]:
    """The columns of a ``CanaryRunRow`` (all but ``id`` and ``deployment_id``) for ``record``."""
    return {
        "predictor": record.predictor, "stable": record.stable, "target": record.to, "version": record.version,
        "stable_version": record.stable_version, "steps": list(record.steps),
        "interval_ms": round(record.interval_s * 1000), "started_by": record.started_by,
        "started_at": _time(record.started_at), "phase": record.phase, "step": record.step, "weight": record.weight,
        "revision": record.revision, "message": record.message,
        "results": [_result_json(r) for r in record.results], "abort_by": record.abort_by,
        "pending": asdict(record.pending) if record.pending is not None else None,
        "updated_at": _time(record.updated_at),
        "finished_at": _time(record.finished_at) if record.finished_at is not None else None,
    }


def canary_out(project: str, deployment: str, row: CanaryRunRow) -> CanaryRecord:
    return CanaryRecord(
        project=project, deployment=deployment, predictor=row.predictor, stable=row.stable, to=row.target,
        version=row.version, stable_version=row.stable_version, steps=tuple(int(w) for w in row.steps),
        interval_s=row.interval_ms / 1000, started_by=row.started_by, started_at=row.started_at.timestamp(),
        phase=_phase(row.phase),
        step=row.step, weight=row.weight, revision=row.revision, message=row.message,
        updated_at=row.updated_at.timestamp(),
        finished_at=row.finished_at.timestamp() if row.finished_at is not None else None,
        results=tuple(_result_out(r) for r in row.results), abort_by=row.abort_by,
        pending=PendingApply(**row.pending) if row.pending is not None else None, id=row.id)
