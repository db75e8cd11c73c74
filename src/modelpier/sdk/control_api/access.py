"""Who may do what: the caller, projects, members, quotas, tokens, invocation keys, users, the audit log."""

from __future__ import annotations

from typing import Any

from modelpier.auth.access import Role
from modelpier.auth.wire import AuditBody, CreatedTokenBody, MemberBody, QuotaBody, TokenBody, UserBody, WhoAmIBody
from modelpier.sdk.control_api.call import Call, delete, get, many, one, post, put, seg


def whoami() -> Call[WhoAmIBody]:
    return get("/whoami", one(WhoAmIBody))


# -- projects --------------------------------------------------------------------------------------
def list_projects() -> Call[list[str]]:
    """The names of the projects the caller is a member of."""
    return get("/projects", lambda response: [str(p["name"]) for p in response.json()])


def create_project(name: str) -> Call[None]:
    return post("/projects", {"name": name}, lambda _response: None)


def delete_project(name: str) -> Call[None]:
    return delete(f"/projects/{seg(name)}")


def members(project: str) -> Call[list[MemberBody]]:
    return get(f"/projects/{seg(project)}/members", many(MemberBody))


def set_member(project: str, user: str, role: Role) -> Call[MemberBody]:
    return put(f"/projects/{seg(project)}/members/{seg(user)}", {"role": role.name}, one(MemberBody))


def remove_member(project: str, user: str) -> Call[None]:
    return delete(f"/projects/{seg(project)}/members/{seg(user)}")


def quota(project: str) -> Call[QuotaBody]:
    return get(f"/projects/{seg(project)}/quota", one(QuotaBody))


def set_quota(project: str, limits: QuotaBody) -> Call[QuotaBody]:
    return put(f"/projects/{seg(project)}/quota", limits.model_dump(), one(QuotaBody))


# -- tokens and users ------------------------------------------------------------------------------
def create_token(name: str, *, user: str | None, expires_in_s: float | None) -> Call[CreatedTokenBody]:
    return post("/tokens", {"name": name, "user": user, "expires_in_s": expires_in_s}, one(CreatedTokenBody))


def list_tokens(*, search: str | None, all_users: bool) -> Call[list[TokenBody]]:
    params: dict[str, Any] = {"all": all_users}
    if search:
        params["search"] = search
    return get("/tokens", many(TokenBody), params)


def revoke_token(token_id: int) -> Call[TokenBody]:
    return Call("DELETE", f"/tokens/{token_id}", one(TokenBody))


def create_key(project: str, deployment: str, name: str) -> Call[CreatedTokenBody]:
    """An invocation key: calls this deployment through the gateway, nothing else."""
    path = f"/projects/{seg(project)}/deployments/{seg(deployment)}/keys"
    return post(path, {"name": name}, one(CreatedTokenBody))


def list_users() -> Call[list[UserBody]]:
    return get("/users", many(UserBody))


def delete_user(user: str) -> Call[None]:
    return delete(f"/users/{seg(user)}")


def audit(project: str | None, *, limit: int) -> Call[list[AuditBody]]:
    """A project's mutating calls, or every project's (``project=None``, admins); newest last."""
    return get(f"/projects/{seg(project)}/audit" if project else "/audit", many(AuditBody), {"limit": limit})
