"""Kubernetes webhook token authentication: ``POST /apis/authentication.k8s.io/v1/tokenreviews``.

A kube-apiserver started with ``--authentication-token-webhook-config-file`` (see docs/security.md)
posts a ``TokenReview`` with the bearer token it was given; we answer with the same object whose
``status`` says whether the token is a valid modelpier user token, the user name and groups from
the user's roles (``modelpier:admin``, ``modelpier:<project>:<role>``). The answer's ``spec`` omits
the token: tokens never appear in a response after their creation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from modelpier.auth.access import Principal
from modelpier.auth.service import AuthService
from modelpier.errors import Unauthenticated

API_VERSION = "authentication.k8s.io/v1"


class TokenReviewSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    token: str = ""


class TokenReview(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    api_version: str = Field(API_VERSION, alias="apiVersion")
    kind: str = "TokenReview"
    spec: TokenReviewSpec = Field(default_factory=TokenReviewSpec)


def groups_of(principal: Principal) -> list[str]:
    groups = ["modelpier:authenticated"] + (["modelpier:admin"] if principal.admin else [])
    return groups + [f"modelpier:{project}:{role.name}" for project, role in sorted(principal.roles.items())]


def tokenreview_router(auth: AuthService) -> APIRouter:
    r = APIRouter(tags=["kubernetes"])

    @r.post("/apis/authentication.k8s.io/v1/tokenreviews",
            description="Kubernetes webhook token authentication; the answer never repeats the token.")
    async def review(body: TokenReview) -> dict[str, Any]:
        try:
            principal = await run_in_threadpool(auth.authenticate, body.spec.token)
        except Unauthenticated as exc:
            status: dict[str, Any] = {"authenticated": False, "error": exc.message}
        else:
            status = {"authenticated": True, "user": {"username": principal.user, "groups": groups_of(principal)}}
        spec = body.spec.model_dump(exclude={"token"})
        return {"apiVersion": body.api_version, "kind": "TokenReview", "spec": spec, "status": status}

    return r
