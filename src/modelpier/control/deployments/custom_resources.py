"""``DeploymentPort``: the control plane's side of the ModelDeployment CR synchroniser.

Implements ``backends.kubernetes.crplan.ControlPlane`` over ``DeploymentService``, so a CR applied
with ``kubectl`` goes through exactly what ``pier deploy`` goes through (validation, model
resolution, quota, the same revision history). The namespace is the project: applying a CR in a
namespace the control plane has no project for creates the project. The binding of a deployment
to its CR is a ``CustomResourceBound`` event in the deployment's history (or a revision a CR
applied), so after a restart a deployment whose CR disappeared meanwhile is known to be deleted.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from modelpier.backends.kubernetes.crplan import Applied, ControlView
from modelpier.control.deployments.service import DeploymentService, DeploymentView
from modelpier.errors import AlreadyExists, NotFound
from modelpier.spec.deployment import ModelDeploymentSpec

BOUND_REASON = "CustomResourceBound"
EVENT_LOOKBACK = 500  # as many events as the SQL store keeps per deployment (control/store/store.py)
CR_USER_PREFIX = "kubernetes/"  # revisions a CR applied are created by "kubernetes/<field manager>"


class DeploymentPort:
    def __init__(self, deployments: DeploymentService) -> None:
        self._deployments = deployments
        self._bound: set[tuple[str, str, datetime]] = set()  # (project, name, created_at): once bound, bound

    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, user: str) -> Applied:
        with contextlib.suppress(AlreadyExists):  # the namespace is the project
            self._deployments.create_project(project)
        result = self._deployments.apply(project, spec, user, name=name)
        return Applied(result.revision.number, result.created)

    def delete(self, project: str, name: str) -> None:
        try:
            self._deployments.delete(project, name)
        except NotFound:
            return

    def status(self, project: str, name: str) -> ControlView | None:
        try:
            return self._view(self._deployments.get(project, name))
        except NotFound:
            return None

    def list(self) -> list[ControlView]:
        return [self._view(v) for v in self._deployments.list_deployments()]

    def bind(self, project: str, name: str, resource: str) -> None:
        self._deployments.store.add_event(project, name, "Normal", BOUND_REASON, f"bound to {resource}")

    def _view(self, view: DeploymentView) -> ControlView:
        record = view.record
        return ControlView(project=record.project, name=record.name, spec=view.revision.spec,
                           revision=view.revision.number, status=record.status, deleting=record.deleting,
                           bound=self._is_bound(view))

    def _is_bound(self, view: DeploymentView) -> bool:
        record = view.record
        key = (record.project, record.name, record.created_at)
        if key in self._bound:
            return True
        store = self._deployments.store
        bound = any(e.reason == BOUND_REASON for e in store.events(record.project, record.name, limit=EVENT_LOOKBACK)) \
            or any(r.created_by.startswith(CR_USER_PREFIX) for r in store.revisions(record.project, record.name))
        if bound:
            self._bound.add(key)
        return bound
