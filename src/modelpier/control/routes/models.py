"""Registry routes: models, versions, aliases, tags under ``/api/v1/projects/{project}/models``.

Mounted twice: under ``/api/v1/projects/{project}`` and, for the ``default`` project, under
``/api/v1`` (``/api/v1/models``, what clients used before projects). A model of another project
answers 404, as if absent. Thin: parse, call ``Registry``, encode with ``registry.wire``. Sync
handlers run in Starlette's thread pool, so database calls never block the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from modelpier.control.quota import LimitsSource, require_storage_within_quota
from modelpier.control.security import principal_of
from modelpier.errors import NotFound
from modelpier.registry.service import Registry
from modelpier.registry.wire import (
    AliasBody,
    CreatedVersionBody,
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


def model_router(registry: Registry, limits: LimitsSource | None = None) -> APIRouter:
    def owned(request: Request) -> None:
        """404 for a model of another project, before the handler runs (a new name passes)."""
        principal_of(request)  # authorization ran first (else 401): this check must not reveal models
        name = request.path_params.get("name")
        if name is None:
            return
        project = _project(request)
        try:
            model = registry.get_model(name)
        except NotFound:
            return
        if model.project != project:
            raise NotFound(f"model {name!r} does not exist in project {project!r}",
                           details={"model": name, "project": project})

    r = APIRouter(tags=["models"], dependencies=[Depends(owned)])

    @r.get("/models", response_model=list[ModelBody])
    def list_models(project: Project,
                    search: str | None = Query(None, description="Substring of the name.")) -> list[ModelBody]:
        return [ModelBody.of(m) for m in registry.list_models(search=search, project=project)]

    @r.get("/models/{name}", response_model=ModelBody)
    def get_model(name: str) -> ModelBody:
        return ModelBody.of(registry.get_model(name))

    @r.patch("/models/{name}", response_model=ModelBody)
    def update_model(name: str, body: ModelUpdateBody) -> ModelBody:
        return ModelBody.of(registry.update_model(name, description=body.description))

    @r.delete("/models/{name}", status_code=204)
    def delete_model(name: str) -> Response:
        registry.delete_model(name)
        return Response(status_code=204)

    @r.get("/models/{name}/versions", response_model=list[VersionBody])
    def list_versions(name: str) -> list[VersionBody]:
        return [VersionBody.of(v) for v in registry.list_versions(name)]

    @r.post("/models/{name}/versions", response_model=CreatedVersionBody, status_code=201,
            responses={200: {"description": "A version with the same digest existed; it is returned."}})
    def create_version(name: str, body: NewVersionBody, response: Response, project: Project) -> CreatedVersionBody:
        if limits is not None:  # a push counts against the project's storage quota
            require_storage_within_quota(registry.storage_bytes(project), sum(f.size for f in body.files),
                                         limits(project))
        version, created = registry.register(body.to_domain(name), project=project)
        if not created:
            response.status_code = 200
        return CreatedVersionBody(**VersionBody.of(version).model_dump(), created=created)

    @r.get("/models/{name}/versions/{selector}", response_model=VersionBody,
           description="`selector` is a version number, an alias, or `latest`.")
    def get_version(name: str, selector: str) -> VersionBody:
        return VersionBody.of(registry.resolve(_ref(name, selector)))

    @r.delete("/models/{name}/versions/{version}", status_code=204)
    def delete_version(name: str, version: int) -> Response:
        registry.delete_version(name, version)
        return Response(status_code=204)

    @r.put("/models/{name}/aliases/{alias}", response_model=VersionBody)
    def set_alias(name: str, alias: str, body: AliasBody) -> VersionBody:
        return VersionBody.of(registry.set_alias(name, alias, body.version))

    @r.delete("/models/{name}/aliases/{alias}", status_code=204)
    def delete_alias(name: str, alias: str) -> Response:
        registry.delete_alias(name, alias)
        return Response(status_code=204)

    @r.put("/models/{name}/tags/{key}", response_model=ModelBody)
    def set_model_tag(name: str, key: str, body: TagBody) -> ModelBody:
        registry.set_tag(name, key, body.value)
        return ModelBody.of(registry.get_model(name))

    @r.delete("/models/{name}/tags/{key}", status_code=204)
    def delete_model_tag(name: str, key: str) -> Response:
        registry.delete_tag(name, key)
        return Response(status_code=204)

    @r.put("/models/{name}/versions/{selector}/tags/{key}", response_model=VersionBody)
    def set_version_tag(name: str, selector: str, key: str, body: TagBody) -> VersionBody:
        registry.set_tag(str(_ref(name, selector)), key, body.value)
        return VersionBody.of(registry.resolve(_ref(name, selector)))

    @r.delete("/models/{name}/versions/{selector}/tags/{key}", status_code=204)
    def delete_version_tag(name: str, selector: str, key: str) -> Response:
        registry.delete_tag(str(_ref(name, selector)), key)
        return Response(status_code=204)

    return r
