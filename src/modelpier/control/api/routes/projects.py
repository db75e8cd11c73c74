"""Project routes under ``/api/v1/projects``: list, create, get, delete. Thin over ``DeploymentService``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from modelpier.auth.access import visible_projects
from modelpier.auth.service import AuthService
from modelpier.control.api.security import principal_of
from modelpier.control.api.wire import NewProjectBody, ProjectBody
from modelpier.control.deployments.service import DeploymentService


def project_router(service: DeploymentService, auth: AuthService) -> APIRouter:
    r = APIRouter(tags=["projects"])

    @r.get("/projects", response_model=list[ProjectBody], description="The projects the caller is a member of.")
    def list_projects(request: Request) -> list[ProjectBody]:
        return [ProjectBody(name=p) for p in visible_projects(principal_of(request), service.list_projects())]

    @r.post("/projects", response_model=ProjectBody, status_code=201,
            responses={409: {"description": "A project of that name exists."}})
    def create_project(body: NewProjectBody) -> ProjectBody:
        service.create_project(body.name)
        return ProjectBody(name=body.name)

    @r.get("/projects/{project}", response_model=ProjectBody)
    def get_project(project: str) -> ProjectBody:
        return ProjectBody(name=service.get_project(project))

    @r.delete("/projects/{project}", status_code=204,
              responses={409: {"description": "The project still has deployments, or is `default`."}})
    def delete_project(project: str) -> Response:
        service.delete_project(project)
        auth.forget_project(project)  # a new project of this name must not inherit members
        return Response(status_code=204)

    return r
