"""The deployments endpoints of ``/api/v1``: deployments, status, events, revisions, rollbacks, logs,
traffic windows and progressive canaries, as ``Call`` objects for the one API client
(``sdk/control_api``: ``ControlClient`` in the CLI, ``AsyncControlClient`` in the dashboard).

Why here and not beside the other endpoints in ``sdk/control_api``: their answers are the bodies of
``control/api/wire.py``, ``canary_wire.py`` and ``traffic_wire.py``, which ``sdk`` (a lower layer) may not
import, and nothing below ``control`` calls these endpoints. Transport, retries and error decoding
are the client's, as for every other endpoint.
"""

from __future__ import annotations

from typing import Any

from modelpier.control.api.canary_wire import CanaryBody
from modelpier.control.api.traffic_wire import TrafficBody
from modelpier.control.api.wire import ApplyResultBody, DeploymentBody, EventBody, LogsBody, RevisionBody
from modelpier.sdk.control_api.call import Call, get, many, one, post, put, seg
from modelpier.spec.deployment import ModelDeploymentStatus


def _one(project: str, name: str) -> str:
    return f"/projects/{seg(project)}/deployments/{seg(name)}"


def list_deployments(project: str | None) -> Call[list[DeploymentBody]]:
    """A project's deployments, or every visible one (``project=None``)."""
    return get(f"/projects/{seg(project)}/deployments" if project else "/deployments", many(DeploymentBody))


def get_deployment(project: str, name: str) -> Call[DeploymentBody]:
    return get(_one(project, name), one(DeploymentBody))


def apply(project: str, name: str, document: dict[str, Any]) -> Call[ApplyResultBody]:
    """``document``: a ModelDeployment in its wire form (camelCase, no nulls)."""
    return put(_one(project, name), document, one(ApplyResultBody))


def delete_deployment(project: str, name: str) -> Call[DeploymentBody]:
    return Call("DELETE", _one(project, name), one(DeploymentBody))


def status(project: str, name: str) -> Call[ModelDeploymentStatus]:
    return get(_one(project, name) + "/status", one(ModelDeploymentStatus))


def events(project: str, name: str, *, limit: int = 100) -> Call[list[EventBody]]:
    return get(_one(project, name) + "/events", many(EventBody), {"limit": limit})


def revisions(project: str, name: str) -> Call[list[RevisionBody]]:
    return get(_one(project, name) + "/revisions", many(RevisionBody))


def rollback(project: str, name: str, to_revision: int | None) -> Call[ApplyResultBody]:
    return post(_one(project, name) + "/rollback", {"revision": to_revision}, one(ApplyResultBody))


def logs(project: str, name: str, *, tail: int, predictor: str | None = None) -> Call[LogsBody]:
    params: dict[str, str | int] = {"tail": tail}
    if predictor:
        params["predictor"] = predictor
    return get(_one(project, name) + "/logs", one(LogsBody), params)


def traffic(project: str, name: str, window: float = 60.0, step: float | None = None) -> Call[TrafficBody]:
    """Rates, errors, latency, in-flight and shadow agreement over the last ``window`` seconds."""
    params: dict[str, float] = {"window": window}
    if step is not None:
        params["step"] = step
    return get(_one(project, name) + "/traffic", one(TrafficBody), params)


def start_canary(project: str, name: str, *, to: str, steps: list[int], interval_s: float,
                 predictor: str = "canary") -> Call[CanaryBody]:
    body = {"to": to, "steps": steps, "intervalSeconds": interval_s, "predictor": predictor}
    return post(_one(project, name) + "/canary", body, one(CanaryBody))


def canary(project: str, name: str) -> Call[CanaryBody]:
    return get(_one(project, name) + "/canary", one(CanaryBody))


def abort_canary(project: str, name: str) -> Call[CanaryBody]:
    return Call("DELETE", _one(project, name) + "/canary", one(CanaryBody))
