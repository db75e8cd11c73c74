"""Traffic routes: gateways report (``POST /api/v1/traffic``), people and tools read a deployment's
window (``GET /api/v1/projects/{project}/deployments/{name}/traffic``).

Thin: the report is validated as ``spec.traffic.TrafficReport`` (the type the gateway sends), kept as it
is by ``TrafficStore``, read back with
the deployment's status (ready/desired replicas per predictor; over time from the ``ReplicaHistory``
the reconciler feeds, when there is one). The predictors are the deployment's, then any other that
served or ran during the window (a canary that ended keeps its lines for that window). A report in
which a predictor holds
requests for a cold start calls ``on_waiting`` (the reconciler's trigger), so a scaled-to-zero
predictor gets a replica at once rather than at the next reconcile tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError

from modelpier.control.api.traffic_wire import TrafficBody
from modelpier.control.deployments.service import DeploymentService
from modelpier.control.traffic.replica_history import ReplicaHistory
from modelpier.control.traffic.store import RETENTION_S, TrafficStore
from modelpier.spec.traffic import TrafficReport

MAX_POINTS = 1000


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


def traffic_router(service: DeploymentService, traffic: TrafficStore,
                   on_waiting: Callable[[], None] | None = None, replicas: ReplicaHistory | None = None) -> APIRouter:
    r = APIRouter(tags=["traffic"])

    @r.post("/traffic", status_code=204, response_class=Response,
            summary="A gateway's traffic snapshot (platform admin: gateways hold the admin token)",
            description="Cumulative counters per deployment and predictor, sent every second by each gateway "
                        "(docs/autoscaling.md). 204; a body that does not validate answers 422 naming the field.")
    def report(body: TrafficReport) -> Response:
        traffic.record(body)
        if on_waiting is not None and body.waiting():
            on_waiting()
        return Response(status_code=204)

    @r.get("/projects/{project}/deployments/{name}/traffic", response_model=TrafficBody,
           summary="Request rate, errors, latency, in-flight and shadow agreement over a window")
    def window(project: str, name: str,
               window: Annotated[float, Query(gt=0, le=RETENTION_S, description="Seconds back from now.")] = 60.0,
               step: Annotated[float | None, Query(gt=0, le=RETENTION_S, description="Seconds per series point "
                                                                                      "(default: window / 12).")]
               = None) -> TrafficBody:
        view = service.get(project, name)  # NotFound (404) for an unknown deployment
        step_s = window / 12 if step is None else step
        if step_s > window:
            raise _invalid("step", f"step ({step_s:g} s) must not exceed the window ({window:g} s)")
        if math.ceil(window / step_s - 1e-9) > MAX_POINTS:
            raise _invalid("step", f"window / step gives more than {MAX_POINTS} points; use a larger step")
        found = traffic.window(project, name, window, step_s)
        key = (project, name)
        served = [n for point in found.series for n, p in point.predictors.items() if p.requests]
        ran = replicas.seen(key, found.end - window) if replicas is not None else []
        names = list(dict.fromkeys([*(p.name for p in view.revision.spec.predictors), *served, *ran]))
        at = (lambda t: replicas.at(key, t)) if replicas is not None else None
        return TrafficBody.of(found, names, view.record.status, at)

    return r
