"""Tokens, users, ``whoami`` and the audit log under ``/api/v1``. Thin over ``AuthService``.

Access is decided before these handlers run (``control.security``); they only read the principal.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from modelpier.auth.service import AuthService
from modelpier.auth.wire import (
    AuditBody,
    CreatedTokenBody,
    InvocationAnswerBody,
    InvocationCheckBody,
    NewKeyBody,
    NewTokenBody,
    TokenBody,
    UserBody,
    WhoAmIBody,
)
from modelpier.control.api.routes.params import IdPath
from modelpier.control.api.security import principal_of
from modelpier.control.deployments.service import DeploymentService


def access_router(auth: AuthService, deployments: DeploymentService) -> APIRouter:
    r = APIRouter(tags=["access"])

    @r.get("/whoami", response_model=WhoAmIBody)
    def whoami(request: Request) -> WhoAmIBody:
        p = principal_of(request)
        return WhoAmIBody(user=p.user, admin=p.admin, roles={k: v.name for k, v in p.roles.items()})

    @r.get("/tokens", response_model=list[TokenBody], description="The caller's tokens (admins: `all=true`).")
    def list_tokens(request: Request, search: str | None = Query(None, description="Prefix or part of the name."),
                    all_users: bool = Query(False, alias="all")) -> list[TokenBody]:
        found = auth.list_tokens(principal_of(request), search=search, all_users=all_users)
        return [TokenBody.of(t) for t in found]

    @r.post("/tokens", response_model=CreatedTokenBody, status_code=201,
            description="Create a token; the secret is in this answer only.")
    def create_token(request: Request, body: NewTokenBody) -> CreatedTokenBody:
        minted = auth.create_token(principal_of(request), body.name, user=body.user,
                                   expires_in_s=body.expires_in_s)
        return CreatedTokenBody(**TokenBody.of(minted.info).model_dump(), token=minted.secret)

    @r.delete("/tokens/{token_id}", response_model=TokenBody, description="Revoke (idempotent).")
    def revoke_token(request: Request, token_id: IdPath) -> TokenBody:
        return TokenBody.of(auth.revoke(principal_of(request), token_id))

    @r.get("/users", response_model=list[UserBody], description="Every user and their project roles (admins).")
    def list_users() -> list[UserBody]:
        return [UserBody.of(user, roles) for user, roles in auth.list_users()]

    @r.delete("/users/{user}", status_code=204,
              description="Delete a user, their tokens and memberships (admins); the tokens stop working at once.",
              responses={409: {"description": "The caller's own user, or the last platform admin."}})
    def delete_user(request: Request, user: str) -> Response:
        auth.delete_user(principal_of(request), user)
        return Response(status_code=204)

    @r.post("/projects/{project}/deployments/{name}/keys", response_model=CreatedTokenBody, status_code=201,
            description="An invocation key: calls this deployment through the gateway, nothing else.")
    def create_key(request: Request, project: str, name: str, body: NewKeyBody) -> CreatedTokenBody:
        deployments.get(project, name)  # 404 for an unknown deployment
        minted = auth.create_invocation_key(principal_of(request), project, name, body.name,
                                            expires_in_s=body.expires_in_s)
        return CreatedTokenBody(**TokenBody.of(minted.info).model_dump(), token=minted.secret)

    @r.post("/invocations/verify", response_model=InvocationAnswerBody,
            description="For gateways (admin token): may this token invoke this deployment?")
    def verify_invocation(body: InvocationCheckBody) -> InvocationAnswerBody:
        return InvocationAnswerBody(allowed=auth.may_invoke(body.token, body.project, body.deployment))

    @r.get("/audit", response_model=list[AuditBody], description="Every project's mutating calls, newest last.")
    def audit(limit: int = Query(100, ge=1, le=1000)) -> list[AuditBody]:
        return [AuditBody.of(e) for e in auth.store.audit(limit=limit)]

    @r.get("/projects/{project}/audit", response_model=list[AuditBody], description="Newest last.")
    def project_audit(project: str, limit: int = Query(100, ge=1, le=1000)) -> list[AuditBody]:
        return [AuditBody.of(e) for e in auth.store.audit(project=project, limit=limit)]

    return r
