"""Models: the list with its filters, a model's page (versions, aliases, signature, metrics, lineage,
size, digest), moving an alias, and deploying a version. Reads and writes go through the API client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelpier.control.api import calls as deployment_calls
from modelpier.dashboard.catalog import ModelFilter, ModelRow, filter_choices, filter_models
from modelpier.dashboard.session import Session
from modelpier.dashboard.status import model_name_of, summarize_status
from modelpier.dashboard.web import Dashboard, quoted, redirect, text_field
from modelpier.errors import Forbidden, InvalidInput, NotFound
from modelpier.registry.domain import Flavor
from modelpier.registry.wire import ModelBody, VersionBody
from modelpier.runtimes.environment import (
    OPTIONAL_PACKAGES,
    compare_environment,
    current_environment,
    recorded_packages,
)
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api import access as access_calls
from modelpier.sdk.control_api import models as model_calls
from modelpier.spec.deployment import API_VERSION, KIND

SHARED_CATALOG = "default"  # its models may be deployed in any project (docs/security.md)


async def _latest(api: AsyncControlClient, project: str, model: ModelBody) -> VersionBody | None:
    if model.latest_version is None:
        return None
    try:
        return await api.send(model_calls.get_version(project, model.name, str(model.latest_version)))
    except NotFound:  # deleted between the two reads
        return None


async def _project_rows(api: AsyncControlClient, project: str, search: str) -> list[ModelRow]:
    try:
        models = await api.send(model_calls.list_models(project, search=search or None))
    except (Forbidden, NotFound):  # a project the user may list but not read: show none of it
        return []
    latest = await asyncio.gather(*(_latest(api, project, m) for m in models))
    return [ModelRow.of(project, m, v) for m, v in zip(models, latest, strict=True)]


def _int(form: FormData, name: str, what: str, *, low: int, high: int) -> int:
    raw = text_field(form, name)
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be between {low} and {high}, got {value}")
    return value


def platform_skew(environment: dict[str, Any], flavor: str) -> list[str]:
    """How this platform's environment differs from the one a version was saved in: what a replica
    run without isolation would meet (the same comparison the model server logs at load)."""
    if not environment:
        return []
    current = current_environment(flavor, recorded_packages(environment))
    return compare_environment(environment, current, optional=OPTIONAL_PACKAGES.get(Flavor(flavor), ()))


def model_routes(dash: Dashboard) -> list[BaseRoute]:
    async def models(request: Request, session: Session) -> Response:
        wanted = ModelFilter.of(request.query_params)
        async with dash.api(session) as api:
            projects = await api.send(access_calls.list_projects())
            asked = [wanted.project] if wanted.project in projects else projects
            found = await asyncio.gather(*(_project_rows(api, p, wanted.search) for p in asked))
        rows = [r for rows in found for r in rows]
        return dash.render(request, "models.html", session=session, title="Models", nav="models",
                           rows=filter_models(rows, wanted), wanted=wanted, total=len(rows),
                           choices=filter_choices(rows, projects))

    async def model(request: Request, session: Session) -> Response:
        project, name = request.path_params["project"], request.path_params["name"]
        async with dash.api(session) as api:
            found, versions, deployments, projects = await asyncio.gather(
                api.send(model_calls.get_model(project, name)), api.send(model_calls.list_versions(project, name)),
                api.send(deployment_calls.list_deployments(None)), api.send(access_calls.list_projects()))
        versions = sorted(versions, key=lambda v: v.version, reverse=True)
        asked = request.query_params.get("version", "")
        selected = next((v for v in versions if str(v.version) == asked), None) if asked else None
        if asked and selected is None:
            raise NotFound(f"model {name!r} has no version {asked!r} in project {project!r}")
        selected = selected or (versions[0] if versions else None)
        used_by = [(d, predictor, ref, summarize_status(d.status, deleting=d.metadata.deleting))
                   for d in deployments for predictor, ref in sorted(d.resolved.items())
                   if model_name_of(ref) == name and project in (SHARED_CATALOG, d.metadata.project)]
        references = [f"{name}:{a}" for a in sorted(found.aliases)] + [f"{name}:{v.version}" for v in versions]
        preferred = f"{name}:{selected.aliases[0]}" if selected and selected.aliases else \
            f"{name}:{selected.version}" if selected else ""
        targets = projects if project == SHARED_CATALOG else [project]
        domain = selected.to_domain() if selected else None
        return dash.render(request, "model.html", session=session, title=f"Model {name}", nav="models",
                           project=project, model=found, versions=versions, selected=selected, used_by=used_by,
                           references=references, preferred=preferred, targets=targets,
                           lock=domain.lock if domain else None,
                           skew=platform_skew(domain.environment, domain.flavor) if domain else [])

    async def set_alias(request: Request, session: Session, form: FormData) -> Response:
        project, name = request.path_params["project"], request.path_params["name"]
        alias = text_field(form, "alias")
        if not alias:
            raise InvalidInput("name the alias to set, e.g. production")
        version = _int(form, "version", "version", low=1, high=2**31)
        async with dash.api(session) as api:
            await api.send(model_calls.set_alias(project, name, alias, version))
        session.flash("ok", f"Alias {name}:{alias} now points at version {version}.")
        return redirect(request, f"/projects/{quoted(project)}/models/{quoted(name)}?version={version}")

    async def deploy(request: Request, session: Session, form: FormData) -> Response:
        project, name = request.path_params["project"], request.path_params["name"]
        target = text_field(form, "project") or project
        deployment = text_field(form, "deployment")
        reference = text_field(form, "reference")
        if not deployment or not reference:
            raise InvalidInput("a deployment needs a name and a model reference")
        if model_name_of(reference) != name:
            raise InvalidInput(f"reference {reference!r} is not a version of model {name!r}")
        predictor = {"name": "main", "model": reference,
                     "replicas": _int(form, "replicas", "replicas", low=0, high=100),
                     "followAlias": form.get("follow") == "on"}
        document = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": deployment, "project": target},
                    "spec": {"predictors": [predictor]}}
        async with dash.api(session) as api:
            result = await api.send(deployment_calls.apply(target, deployment, document))
        number = result.revision.number
        session.flash("ok", f"Deployed {reference} as {target}/{deployment}: revision {number}"
                            + ("" if result.created else " (unchanged)") + ".")
        return redirect(request, f"/projects/{quoted(target)}/deployments/{quoted(deployment)}")

    return [
        Route("/models", dash.page(models), methods=["GET"]),
        Route("/projects/{project}/models/{name}", dash.page(model), methods=["GET"]),
        Route("/projects/{project}/models/{name}/alias", dash.action(set_alias), methods=["POST"]),
        Route("/projects/{project}/models/{name}/deploy", dash.action(deploy), methods=["POST"]),
    ]
