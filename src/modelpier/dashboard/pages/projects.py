"""Projects: the caller's projects, and a project's members, roles, quotas and usage bars."""

from __future__ import annotations

import asyncio
from collections import Counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelpier.control.api import calls as deployment_calls
from modelpier.dashboard.session import Session
from modelpier.dashboard.traffic import NONE
from modelpier.dashboard.usage import project_usage, usage_bars
from modelpier.dashboard.web import Dashboard
from modelpier.errors import NotFound
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api import access as access_calls
from modelpier.sdk.control_api import models as model_calls


async def _storage_bytes(api: AsyncControlClient, project: str) -> int:
    """What the storage quota counts: the size of every version of the project's models."""
    total = 0
    for model in await api.send(model_calls.list_models(project)):
        try:
            total += sum(v.size for v in await api.send(model_calls.list_versions(project, model.name)))
        except NotFound:  # deleted while we read
            continue
    return total


def project_routes(dash: Dashboard) -> list[BaseRoute]:
    async def projects(request: Request, session: Session) -> Response:
        async with dash.api(session) as api:
            names, deployments, me = await asyncio.gather(
                api.send(access_calls.list_projects()), api.send(deployment_calls.list_deployments(None)),
                api.send(access_calls.whoami()))
        counts = Counter(d.metadata.project for d in deployments)
        return dash.render(request, "projects.html", session=session, title="Projects", nav="projects",
                           projects=[(n, counts.get(n, 0), me.roles.get(n, "admin" if me.admin else NONE))
                                     for n in names])

    async def project(request: Request, session: Session) -> Response:
        name = request.path_params["project"]
        async with dash.api(session) as api:
            members, quota, deployments, storage = await asyncio.gather(
                api.send(access_calls.members(name)), api.send(access_calls.quota(name)),
                api.send(deployment_calls.list_deployments(name)), _storage_bytes(api, name))
        live = [d for d in deployments if not d.metadata.deleting]
        bars = usage_bars(project_usage([d.spec for d in live], storage), quota)
        return dash.render(request, "project.html", session=session, title=f"Project {name}", nav="projects",
                           project=name, members=sorted(members, key=lambda m: m.user), bars=bars,
                           deployments=sorted(deployments, key=lambda d: d.metadata.name))

    return [Route("/projects", dash.page(projects), methods=["GET"]),
            Route("/projects/{project}", dash.page(project), methods=["GET"])]
