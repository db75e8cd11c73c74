"""Deployments: the list with status, replicas and weights; a deployment's page with predictors,
revisions (rollback), events, the replicas' log tail and live traffic charts.

The page's moving parts refresh themselves: htmx polls the status fragment (conditions,
predictors, events) and the log tail; ``static/app.js`` polls ``traffic.json`` for the charts.
Forms (rollback) stay outside the polled fragments, so a refresh never takes the keyboard focus.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from modelpier.control.api import calls as deployment_calls
from modelpier.control.api.wire import DeploymentBody
from modelpier.dashboard.links import docs_url, endpoint_url
from modelpier.dashboard.session import Session
from modelpier.dashboard.status import predictor_lines, summarize_status
from modelpier.dashboard.traffic import SUMMARY_COLUMNS, chart_data
from modelpier.dashboard.web import Dashboard, quoted, redirect, text_field
from modelpier.errors import InvalidInput, NotFound

LOG_TAIL = 40  # lines per replica: what fits on a screen
# What the deployment page charts: the last five minutes, one point per five seconds.
TRAFFIC_WINDOW_S = 300
TRAFFIC_STEP_S = 5
EVENTS_SHOWN = 15


def _where(request: Request) -> tuple[str, str]:
    return request.path_params["project"], request.path_params["name"]


def deployment_routes(dash: Dashboard) -> list[BaseRoute]:
    def view(d: DeploymentBody) -> dict[str, Any]:
        endpoint = endpoint_url(d.status.url, dash.gateway_url, d.metadata.project, d.metadata.name)
        return {"d": d, "summary": summarize_status(d.status, deleting=d.metadata.deleting),
                "predictors": predictor_lines(d), "endpoint": endpoint, "docs": docs_url(endpoint)}

    async def deployments(request: Request, session: Session) -> Response:
        async with dash.api(session) as api:
            found = await api.send(deployment_calls.list_deployments(None))
        rows = [view(d) for d in sorted(found, key=lambda d: (d.metadata.project, d.metadata.name))]
        return dash.render(request, "deployments.html", session=session, title="Deployments", nav="deployments",
                           rows=rows)

    async def deployment(request: Request, session: Session) -> Response:
        project, name = _where(request)
        async with dash.api(session) as api:
            found, revisions, events = await asyncio.gather(
                api.send(deployment_calls.get_deployment(project, name)),
                api.send(deployment_calls.revisions(project, name)),
                api.send(deployment_calls.events(project, name, limit=EVENTS_SHOWN)))
        revisions = sorted(revisions, key=lambda r: r.number, reverse=True)
        return dash.render(request, "deployment.html", session=session, title=f"Deployment {project}/{name}",
                           nav="deployments", revisions=revisions, events=list(reversed(events)),
                           known=revisions[0].number if revisions else None, summary_columns=SUMMARY_COLUMNS,
                           **view(found))

    async def status(request: Request, session: Session) -> Response:
        project, name = _where(request)
        async with dash.api(session) as api:
            found, events = await asyncio.gather(
                api.send(deployment_calls.get_deployment(project, name)),
                api.send(deployment_calls.events(project, name, limit=EVENTS_SHOWN)))
        known = request.query_params.get("known", "")
        return dash.render(request, "_deployment_status.html", session=session, events=list(reversed(events)),
                           known=int(known) if known.isdigit() else None, **view(found))

    async def logs(request: Request, session: Session) -> Response:
        project, name = _where(request)
        async with dash.api(session) as api:
            try:  # None: this control plane has no log source (404)
                lines: list[str] | None = (await api.send(deployment_calls.logs(project, name, tail=LOG_TAIL))).lines
            except NotFound:
                lines = None
        return dash.render(request, "_logs.html", session=session, lines=lines)

    async def traffic(request: Request, session: Session) -> Response:
        project, name = _where(request)
        async with dash.api(session) as api:
            try:
                window = await api.send(deployment_calls.traffic(project, name, TRAFFIC_WINDOW_S, TRAFFIC_STEP_S))
            except NotFound:  # no gateway has reported yet, or a control plane without the traffic endpoint
                return JSONResponse(chart_data(None))
        return JSONResponse(chart_data(window.model_dump(mode="json", by_alias=True)))

    async def rollback(request: Request, session: Session, form: FormData) -> Response:
        project, name = _where(request)
        raw = text_field(form, "revision")
        if not raw.isdigit():
            raise InvalidInput(f"revision must be a revision number, got {raw!r}")
        async with dash.api(session) as api:
            result = await api.send(deployment_calls.rollback(project, name, int(raw)))
        if result.created:
            session.flash("ok", f"Rolling back to revision {raw}: revision {result.revision.number} rolls out.")
        else:
            session.flash("ok", f"Revision {raw} is what the deployment already runs; nothing changed.")
        return redirect(request, f"/projects/{quoted(project)}/deployments/{quoted(name)}")

    one = "/projects/{project}/deployments/{name}"
    return [
        Route("/deployments", dash.page(deployments), methods=["GET"]),
        Route(one, dash.page(deployment), methods=["GET"]),
        Route(one + "/status", dash.page(status), methods=["GET"]),
        Route(one + "/logs", dash.page(logs), methods=["GET"]),
        Route(one + "/traffic.json", dash.page(traffic), methods=["GET"]),
        Route(one + "/rollback", dash.action(rollback), methods=["POST"]),
    ]
