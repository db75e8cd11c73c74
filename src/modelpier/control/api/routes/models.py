"""Registry routes: models, versions, aliases, tags under ``/api/v1/projects/{project}/models``.

Mounted twice: under ``/api/v1/projects/{project}`` and, for the ``default`` project, under
``/api/v1`` (``/api/v1/models``, what clients used before projects). Names are unique per project
and every lookup stays within the URL's project, so a model of another project answers 404 exactly
like a missing one. A project that does not exist answers 404 naming it: admins pass access
control everywhere, and must not register into a mistyped project. Thin: parse, call ``Registry``,
encode with ``registry.wire``. Sync handlers run in Starlette's thread pool, so database calls
never block the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from modelpier.control.api.routes.params import IdPath
from modelpier.control.api.security import principal_of
from modelpier.control.deployments.quota import LimitsSource, require_storage_within_quota
from modelpier.errors import NotFound
from modelpier.registry.service import Registry
from modelpier.registry.wire import (
    AliasBody,
    CreatedVersionBody,
    LockBody,
    ModelBody,
    ModelUpdateBody,
    NewVersionBody,
    TagBody,
    VersionBody,
)
from modelpier.spec.names import ModelRef

DEFAULT_PROJECT = "default"


def _ref(name: str, selector: str) -> ModelRef:
    return ModelRef.parse(f"{name}:{selector}")


def _project(request: Request) -> str:
    return str(request.path_params.get("project", DEFAULT_PROJECT))


Project = Annotated[str, Depends(_project)]
ProjectCheck = Callable[[str], object]


def model_router(registry: Registry, limits: LimitsSource | None = None, *,
                 require_project: ProjectCheck | None = None) -> APIRouter:
    """``require_project(name)`` raises ``NotFound`` naming a project that does not exist, so an admin
    (whom access control lets into any project) cannot register into one by mistyping its name."""

    def existing(request: Request) -> None:
        principal_of(request)  # authorization ran first (else 401)
        project = _project(request)
        if require_project is not None and project != DEFAULT_PROJECT:
            require_project(project)

    r = APIRouter(tags=["models"], dependencies=[Depends(existing)])

    @r.get("/models", response_model=list[ModelBody])
    def list_models(project: Project,
                    search: str | None = Query(None, description="Substring of the name.")) -> list[ModelBody]:
        return [ModelBody.of(m) for m in registry.list_models(search=search, project=project)]

    @r.get("/models/{name}", response_model=ModelBody)
    def get_model(name: str, project: Project) -> ModelBody:
        return ModelBody.of(registry.get_model(name, project=project))

    @r.patch("/models/{name}", response_model=ModelBody)
    def update_model(name: str, body: ModelUpdateBody, project: Project) -> ModelBody:
        return ModelBody.of(registry.update_model(name, description=body.description, project=project))

    @r.delete("/models/{name}", status_code=204)
    def delete_model(name: str, project: Project) -> Response:
        registry.delete_model(name, project=project)
        return Response(status_code=204)

    @r.get("/models/{name}/versions", response_model=list[VersionBody])
    def list_versions(name: str, project: Project) -> list[VersionBody]:
        return [VersionBody.of(v) for v in registry.list_versions(name, project=project)]

    @r.post("/models/{name}/versions", response_model=CreatedVersionBody, status_code=201,
            responses={200: {"description": "A version with the same digest existed; it is returned."},
                       403: {"description": "The version would take the project past its storage quota."}})
    def create_version(name: str, body: NewVersionBody, response: Response, project: Project) -> CreatedVersionBody:
        admit = None
        if limits is not None:  # a push counts against the project's storage quota, checked atomically
            quota = limits(project)

            def admit(stored: int, added: int) -> None:
                require_storage_within_quota(stored, added, quota)

        version, created = registry.register(body.to_domain(name), project=project, admit=admit)
        if not created:
            response.status_code = 200
        return CreatedVersionBody(**VersionBody.of(version).model_dump(), created=created)

    @r.get("/models/{name}/versions/{selector}", response_model=VersionBody,
           description="`selector` is a version number, an alias, or `latest`.")
    def get_version(name: str, selector: str, project: Project) -> VersionBody:
        return VersionBody.of(registry.resolve(_ref(name, selector), project=project))

    # One path template with the GET above (``selector``), so the OpenAPI document has one path for
    # the URL and a client's DELETE is this operation, not "undeclared"; deleting takes a number only.
    @r.delete("/models/{name}/versions/{selector}", status_code=204,
              description="`selector` must be a version number here: an alias is never deleted by accident.")
    def delete_version(name: str, selector: IdPath, project: Project) -> Response:
        registry.delete_version(name, selector, project=project)
        return Response(status_code=204)

    @r.put("/models/{name}/aliases/{alias}", response_model=VersionBody)
    def set_alias(name: str, alias: str, body: AliasBody, project: Project) -> VersionBody:
        return VersionBody.of(registry.set_alias(name, alias, body.version, project=project))

    @r.delete("/models/{name}/aliases/{alias}", status_code=204)
    def delete_alias(name: str, alias: str, project: Project) -> Response:
        registry.delete_alias(name, alias, project=project)
        return Response(status_code=204)

    @r.put("/models/{name}/tags/{key}", response_model=ModelBody)
    def set_model_tag(name: str, key: str, body: TagBody, project: Project) -> ModelBody:
        registry.set_tag(name, key, body.value, project=project)
        return ModelBody.of(registry.get_model(name, project=project))

    @r.delete("/models/{name}/tags/{key}", status_code=204)
    def delete_model_tag(name: str, key: str, project: Project) -> Response:
        registry.delete_tag(name, key, project=project)
        return Response(status_code=204)

    @r.put("/models/{name}/versions/{selector}/tags/{key}", response_model=VersionBody)
    def set_version_tag(name: str, selector: str, key: str, body: TagBody, project: Project) -> VersionBody:
        registry.set_tag(str(_ref(name, selector)), key, body.value, project=project)
        return VersionBody.of(registry.resolve(_ref(name, selector), project=project))

    @r.get("/models/{name}/versions/{selector}/lock", response_model=LockBody,
           description="The version's locked environment (404 when it records none).")
    def get_lock(name: str, selector: str, project: Project) -> LockBody:
        lock = registry.get_lock(_ref(name, selector), project=project)
        if lock is None:
            raise NotFound(f"{name}:{selector} records no environment lock; set one with "
                           "`pier models lock`", details={"model": name})
        return LockBody.of(lock)

    @r.put("/models/{name}/versions/{selector}/lock", response_model=VersionBody,
           description="Re-lock a version: record exact pins (and hashes) for its environment.")
    def set_lock(name: str, selector: str, body: LockBody, project: Project) -> VersionBody:
        return VersionBody.of(registry.set_lock(_ref(name, selector), body.to_domain(), project=project))

    @r.delete("/models/{name}/versions/{selector}/tags/{key}", status_code=204)
    def delete_version_tag(name: str, selector: str, key: str, project: Project) -> Response:
        registry.delete_tag(str(_ref(name, selector)), key, project=project)
        return Response(status_code=204)

    return r
