"""A ``DeploymentStore`` that wakes the reconciler after every write of desired state.

Composition instead of a hook in the API: the control plane is handed this wrapper, the reconciler
the plain store, and an apply or delete is reconciled at once instead of at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable

from modelpier.control.deployments.state import DeploymentRecord, DeploymentStore, Event, EventType, Revision
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelpier.spec.revision import RevisionKind


class NotifyingStore:
    def __init__(self, inner: DeploymentStore, notify: Callable[[], None]) -> None:
        self._inner, self._notify = inner, notify

    def ensure_project(self, name: str) -> None:
        self._inner.ensure_project(name)

    def list_projects(self) -> list[str]:
        return self._inner.list_projects()

    def delete_project(self, name: str) -> None:
        self._inner.delete_project(name)

    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, *, resolved: dict[str, str],
              created_by: str, kind: RevisionKind, cause: str) -> tuple[DeploymentRecord, Revision, bool]:
        result = self._inner.apply(project, name, spec, resolved=resolved, created_by=created_by, kind=kind,
                                   cause=cause)
        if result[2] or result[1].number != result[0].serving_revision:
            self._notify()
        return result

    def get(self, project: str, name: str) -> DeploymentRecord:
        return self._inner.get(project, name)

    def list_deployments(self, project: str | None = None) -> list[DeploymentRecord]:
        return self._inner.list_deployments(project)

    def request_delete(self, project: str, name: str) -> None:
        self._inner.request_delete(project, name)
        self._notify()

    def revisions(self, project: str, name: str) -> list[Revision]:
        return self._inner.revisions(project, name)

    def revision(self, project: str, name: str, number: int) -> Revision:
        return self._inner.revision(project, name, number)

    def events(self, project: str, name: str, *, limit: int = 100) -> list[Event]:
        return self._inner.events(project, name, limit=limit)

    def set_status(self, project: str, name: str, status: ModelDeploymentStatus, *,
                   serving_revision: int | None) -> None:
        self._inner.set_status(project, name, status, serving_revision=serving_revision)

    def add_event(self, project: str, name: str, type: EventType, reason: str, message: str, *,
                  revision: int | None = None) -> None:
        self._inner.add_event(project, name, type, reason, message, revision=revision)

    def purge(self, project: str, name: str) -> None:
        self._inner.purge(project, name)

    def close(self) -> None:
        self._inner.close()
