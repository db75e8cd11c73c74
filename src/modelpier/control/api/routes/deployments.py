"""Deployment routes under ``/api/v1/projects/{project}/deployments``.

Thin: decode the body (JSON or YAML), call ``DeploymentService``, encode with ``control.wire``.
Handlers are sync, so Starlette runs them in its thread pool and database and registry calls never
block the event loop; the one async piece is the dependency that reads the raw request body.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query, Request, Response

from modelpier.auth.access import visible_projects
from modelpier.control.api.routes.params import IdPath
from modelpier.control.api.security import principal_of
from modelpier.control.api.wire import (
    ApplyResultBody,
    DeploymentBody,
    EventBody,
    LogsBody,
    RevisionBody,
    RollbackBody,
)
from modelpier.control.deployments.logs import DEFAULT_TAIL
from modelpier.control.deployments.service import DeploymentService
from modelpier.errors import InvalidInput, InvalidSpec, PayloadTooLarge
from modelpier.spec.deployment import ModelDeploymentStatus

# A deployment document is a few KiB; a megabyte is generous and keeps parsing cheap.
MAX_DOCUMENT_BYTES = 1024 * 1024
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


async def _document(request: Request) -> Any:
    """The request body decoded as JSON or YAML, by its ``Content-Type`` (absent: YAML, a superset)."""
    body = await request.body()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"a deployment document is at most {MAX_DOCUMENT_BYTES} bytes, got {len(body)}")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return decode_document(media, body)


def decode_document(media: str, body: bytes) -> Any:
    if not body.strip():
        raise InvalidSpec("the request body is empty; send a ModelDeployment document as JSON or YAML")
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(body)
        except ValueError as exc:
            raise InvalidSpec(f"the request body is not valid JSON: {exc}") from None
    if media and media not in YAML_TYPES:
        raise InvalidInput(f"Content-Type {media!r} is not supported; send application/json or application/yaml",
                           details={"content_type": media})
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise InvalidSpec(f"the request body is not valid YAML: {exc}") from None


def _user(request: Request) -> str:
    """Who is recorded on revisions: the authenticated user, never a name the client asserts."""
    return principal_of(request).user


def deployment_router(service: DeploymentService) -> APIRouter:
    r = APIRouter(tags=["deployments"])
    base = "/projects/{project}/deployments"
    one = base + "/{name}"

    @r.get("/deployments", response_model=list[DeploymentBody],
           description="Deployments of every project the caller is a member of.")
    def list_all(request: Request) -> list[DeploymentBody]:
        principal = principal_of(request)
        views = service.list_deployments()
        visible = set(visible_projects(principal, sorted({v.record.project for v in views})))
        return [DeploymentBody.of(v) for v in views if v.record.project in visible]

    @r.get(base, response_model=list[DeploymentBody])
    def list_deployments(project: str) -> list[DeploymentBody]:
        return [DeploymentBody.of(v) for v in service.list_deployments(project)]

    @r.put(one, response_model=ApplyResultBody, status_code=201,
           description="Create or replace from a ModelDeployment document (JSON, or YAML with "
                       "`Content-Type: application/yaml`). 201 when a revision was made, 200 when the spec "
                       "and resolved versions equal the latest revision's.",
           responses={200: {"description": "Unchanged: no new revision."}},
           openapi_extra={"requestBody": {"required": True, "content": {
               "application/json": {"schema": {"$ref": "#/components/schemas/ModelDeployment"}},
               "application/yaml": {"schema": {"type": "string"}}}}})
    def apply(project: str, name: str, request: Request, response: Response,
              document: Annotated[Any, Depends(_document)]) -> ApplyResultBody:
        result = service.apply(project, document, _user(request), name=name)
        if not result.created:
            response.status_code = 200
        return ApplyResultBody.of(result)

    @r.get(one, response_model=DeploymentBody)
    def get(project: str, name: str) -> DeploymentBody:
        return DeploymentBody.of(service.get(project, name))

    @r.delete(one, response_model=DeploymentBody, status_code=202,
              description="Request deletion; the reconciler stops the replicas, then the record goes.")
    def delete(project: str, name: str) -> DeploymentBody:
        service.delete(project, name)
        return DeploymentBody.of(service.get(project, name))

    @r.get(one + "/status", response_model=ModelDeploymentStatus)
    def status(project: str, name: str) -> ModelDeploymentStatus:
        return service.status(project, name)

    @r.get(one + "/events", response_model=list[EventBody], description="Newest last.")
    def events(project: str, name: str, limit: int = Query(100, ge=1, le=500)) -> list[EventBody]:
        return [EventBody.of(e) for e in service.events(project, name, limit=limit)]

    @r.get(one + "/revisions", response_model=list[RevisionBody], description="Oldest first.")
    def revisions(project: str, name: str) -> list[RevisionBody]:
        return [RevisionBody.of(rev) for rev in service.revisions(project, name)]

    @r.get(one + "/revisions/{number}", response_model=RevisionBody)
    def revision(project: str, name: str, number: IdPath) -> RevisionBody:
        return RevisionBody.of(service.revision(project, name, number))

    @r.post(one + "/rollback", response_model=ApplyResultBody, status_code=201,
            description="Re-apply an old revision as a new one (default: the previous revision).",
            responses={200: {"description": "The target's content is what already runs: no new revision."}})
    def rollback(project: str, name: str, request: Request, response: Response,
                 body: RollbackBody | None = None) -> ApplyResultBody:
        target = body.revision if body is not None else None
        result = service.rollback(project, name, target, created_by=_user(request))
        if not result.created:
            response.status_code = 200
        return ApplyResultBody.of(result)

    @r.get(one + "/logs", response_model=LogsBody, description="The last lines of each replica's log.")
    def logs(project: str, name: str, predictor: str | None = Query(None),
             tail: int = Query(DEFAULT_TAIL, ge=1, le=10_000)) -> LogsBody:
        return LogsBody(lines=service.logs(project, name, predictor=predictor, tail=tail))

    return r
