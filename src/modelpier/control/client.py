"""``DeploymentClient``: the projects and deployments API of a control plane, over HTTP.

The CLI's only way to deployments (never the database directly), so ``pier deploy`` behaves the
same against a laptop and a cluster. Failures map onto the error tree as in ``RegistryClient``:
unreachable → ``RemoteUnreachable`` naming the URL; an error answer → the server's own error.
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from modelpier.control.canary_wire import CanaryBody
from modelpier.control.traffic_wire import TrafficBody
from modelpier.control.wire import (
    ApplyResultBody,
    DeploymentBody,
    EventBody,
    LogsBody,
    ProjectBody,
    RevisionBody,
)
from modelpier.errors import RemoteUnreachable
from modelpier.registry.remote import raise_for_error
from modelpier.spec.deployment import ModelDeploymentStatus

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class DeploymentClient:
    def __init__(self, base_url: str, *, token: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v1", headers=headers, timeout=_TIMEOUT,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteUnreachable(
                f"cannot reach the modelpier control plane at {self.base_url} ({method} {path}): {exc}; "
                "is `pier server` (or `pier up`) running? Point elsewhere with --remote or PIER_REMOTE") from exc
        return raise_for_error(response)

    @staticmethod
    def _one(project: str, name: str) -> str:
        return f"/projects/{project}/deployments/{name}"

    # -- projects -------------------------------------------------------------------------------
    def list_projects(self) -> list[str]:
        return [ProjectBody.model_validate(p).name for p in self._send("GET", "/projects").json()]

    def create_project(self, name: str) -> None:
        self._send("POST", "/projects", json={"name": name})

    def delete_project(self, name: str) -> None:
        self._send("DELETE", f"/projects/{name}")

    # -- deployments ----------------------------------------------------------------------------
    def apply(self, project: str, name: str, document: dict[str, Any]) -> ApplyResultBody:
        return ApplyResultBody.model_validate(self._send("PUT", self._one(project, name), json=document).json())

    def get(self, project: str, name: str) -> DeploymentBody:
        return DeploymentBody.model_validate(self._send("GET", self._one(project, name)).json())

    def list_deployments(self, project: str | None) -> list[DeploymentBody]:
        path = f"/projects/{project}/deployments" if project else "/deployments"
        return [DeploymentBody.model_validate(d) for d in self._send("GET", path).json()]

    def delete(self, project: str, name: str) -> DeploymentBody:
        return DeploymentBody.model_validate(self._send("DELETE", self._one(project, name)).json())

    def status(self, project: str, name: str) -> ModelDeploymentStatus:
        return ModelDeploymentStatus.model_validate(self._send("GET", self._one(project, name) + "/status").json())

    def events(self, project: str, name: str, *, limit: int = 100) -> list[EventBody]:
        response = self._send("GET", self._one(project, name) + "/events", params={"limit": limit})
        return [EventBody.model_validate(e) for e in response.json()]

    def revisions(self, project: str, name: str) -> list[RevisionBody]:
        response = self._send("GET", self._one(project, name) + "/revisions")
        return [RevisionBody.model_validate(r) for r in response.json()]

    def rollback(self, project: str, name: str, to_revision: int | None) -> ApplyResultBody:
        response = self._send("POST", self._one(project, name) + "/rollback", json={"revision": to_revision})
        return ApplyResultBody.model_validate(response.json())

    def logs(self, project: str, name: str, *, predictor: str | None, tail: int) -> LogsBody:
        params: dict[str, str | int] = {"tail": tail}
        if predictor:
            params["predictor"] = predictor
        return LogsBody.model_validate(self._send("GET", self._one(project, name) + "/logs", params=params).json())

    # -- traffic and progressive canary (issue 5) --------------------------------------------------
    def traffic(self, project: str, name: str, window: float = 60.0, step: float | None = None) -> TrafficBody:
        """Rates, errors, latency, in-flight and shadow agreement over the last ``window`` seconds."""
        params: dict[str, float] = {"window": window}
        if step is not None:
            params["step"] = step
        response = self._send("GET", self._one(project, name) + "/traffic", params=params)
        return TrafficBody.model_validate(response.json())

    def start_canary(self, project: str, name: str, *, to: str, steps: list[int], interval_s: float,
                     predictor: str = "canary") -> CanaryBody:
        body = {"to": to, "steps": steps, "intervalSeconds": interval_s, "predictor": predictor}
        return CanaryBody.model_validate(self._send("POST", self._one(project, name) + "/canary", json=body).json())

    def canary(self, project: str, name: str) -> CanaryBody:
        return CanaryBody.model_validate(self._send("GET", self._one(project, name) + "/canary").json())

    def abort_canary(self, project: str, name: str) -> CanaryBody:
        return CanaryBody.model_validate(self._send("DELETE", self._one(project, name) + "/canary").json())
