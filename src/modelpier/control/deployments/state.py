"""Control-plane state: deployments, their immutable revisions, and events.

``DeploymentStore`` is the seam between the API (which writes desired state: apply, delete,
rollback) and the reconciler (which reads it, drives a backend, and writes status and events
back). Every change of spec makes a new immutable ``Revision``; applying the same spec again is a
no-op. Implementations raise only ``modelpier.errors`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelpier.spec.revision import RevisionKind

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class Revision:
    """An immutable snapshot of a deployment's spec, with the model versions it resolved to."""

    project: str
    deployment: str
    number: int  # 1, 2, 3... per deployment, never reused
    spec: ModelDeploymentSpec
    resolved: dict[str, str]  # predictor name -> "model:version" resolved when the revision was made
    created_at: datetime
    created_by: str
    kind: RevisionKind  # which writer made it: an apply, a rollback, an alias move, a canary's step...
    cause: str  # why, for people: "applied", "rollback to revision 2", "alias iris:production moved from 3 to 4"


@dataclass(frozen=True, slots=True)
class Event:
    project: str
    deployment: str
    time: datetime
    type: EventType
    reason: str  # CamelCase: ReplicaStarted, ReplicaCrashed, RolloutComplete, RolledBack...
    message: str
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    project: str
    name: str
    latest_revision: int  # the desired revision: the newest one
    serving_revision: int | None  # the last revision that became fully ready (rollback target)
    status: ModelDeploymentStatus
    deleting: bool  # delete requested; the reconciler stops replicas, then purges the record
    created_at: datetime
    updated_at: datetime


class DeploymentStore(Protocol):
    # -- projects -------------------------------------------------------------------------------
    def ensure_project(self, name: str) -> None: ...

    def list_projects(self) -> list[str]: ...

    def delete_project(self, name: str) -> None:
        """``Conflict`` while it still has deployments; ``NotFound`` if unknown."""

    # -- desired state (the API) ----------------------------------------------------------------
    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, *, resolved: dict[str, str],
              created_by: str, kind: RevisionKind, cause: str) -> tuple[DeploymentRecord, Revision, bool]:
        """Create or replace; ``(record, latest revision, created)``. The same spec and resolved
        versions as the latest revision create nothing (``created=False``). ``NotFound`` if the
        project does not exist; ``Conflict`` while the deployment is being deleted."""

    def get(self, project: str, name: str) -> DeploymentRecord: ...

    def list_deployments(self, project: str | None = None) -> list[DeploymentRecord]:
        """Deployments of a project (every project when ``None``), including ones being deleted."""

    def request_delete(self, project: str, name: str) -> None: ...

    def revisions(self, project: str, name: str) -> list[Revision]:
        """Oldest first."""

    def revision(self, project: str, name: str, number: int) -> Revision: ...

    def events(self, project: str, name: str, *, limit: int = 100) -> list[Event]:
        """Newest last."""

    # -- observed state (the reconciler) --------------------------------------------------------
    def set_status(self, project: str, name: str, status: ModelDeploymentStatus, *,
                   serving_revision: int | None) -> None: ...

    def add_event(self, project: str, name: str, type: EventType, reason: str, message: str, *,
                  revision: int | None = None) -> None: ...

    def purge(self, project: str, name: str) -> None:
        """Remove a deleted deployment with its revisions and events (after its replicas stopped)."""

    def close(self) -> None: ...
