"""Project members and quotas under ``/api/v1/projects/{project}``. Thin over ``AuthService``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from modelpier.auth.service import AuthService
from modelpier.auth.wire import MemberBody, QuotaBody, RoleBody
from modelpier.control.deployments.service import DeploymentService


def member_router(auth: AuthService, deployments: DeploymentService) -> APIRouter:
    r = APIRouter(tags=["projects"])
    one = "/projects/{project}/members/{user}"

    @r.get("/projects/{project}/members", response_model=list[MemberBody])
    def members(project: str) -> list[MemberBody]:
        deployments.get_project(project)
        return [MemberBody.of(m) for m in auth.store.members(project)]

    @r.put(one, response_model=MemberBody, description="Add a member or change their role.")
    def set_member(project: str, user: str, body: RoleBody) -> MemberBody:
        deployments.get_project(project)
        return MemberBody.of(auth.set_member(project, user, body.to_role()))

    @r.delete(one, status_code=204)
    def remove_member(project: str, user: str) -> Response:
        auth.remove_member(project, user)
        return Response(status_code=204)

    @r.get("/projects/{project}/quota", response_model=QuotaBody)
    def get_quota(project: str) -> QuotaBody:
        deployments.get_project(project)
        return QuotaBody(**auth.store.limits(project))

    @r.put("/projects/{project}/quota", response_model=QuotaBody)
    def set_quota(project: str, body: QuotaBody) -> QuotaBody:
        deployments.get_project(project)
        auth.store.set_limits(project, body.model_dump())
        return body

    return r
