"""``AccessClient``: tokens, members, quotas and the audit log of a control plane, over HTTP.

Shares ``DeploymentClient``'s transport and error mapping; the CLI's ``pier token``, ``pier user``,
``pier audit``, ``pier project`` and ``pier quota`` commands are its only users.
"""

from __future__ import annotations

from typing import Any

from modelpier.auth.access import Role
from modelpier.auth.wire import AuditBody, CreatedTokenBody, MemberBody, QuotaBody, TokenBody, UserBody, WhoAmIBody
from modelpier.control.client import DeploymentClient


class AccessClient(DeploymentClient):
    def whoami(self) -> WhoAmIBody:
        return WhoAmIBody.model_validate(self._send("GET", "/whoami").json())

    def create_token(self, name: str, *, user: str | None, expires_in_s: float | None) -> CreatedTokenBody:
        body = {"name": name, "user": user, "expires_in_s": expires_in_s}
        return CreatedTokenBody.model_validate(self._send("POST", "/tokens", json=body).json())

    def list_tokens(self, *, search: str | None, all_users: bool) -> list[TokenBody]:
        params: dict[str, Any] = {"all": all_users}
        if search:
            params["search"] = search
        return [TokenBody.model_validate(t) for t in self._send("GET", "/tokens", params=params).json()]

    def revoke_token(self, token_id: int) -> TokenBody:
        return TokenBody.model_validate(self._send("DELETE", f"/tokens/{token_id}").json())

    def list_users(self) -> list[UserBody]:
        return [UserBody.model_validate(u) for u in self._send("GET", "/users").json()]

    def delete_user(self, user: str) -> None:
        self._send("DELETE", f"/users/{user}")

    def create_key(self, project: str, deployment: str, name: str) -> CreatedTokenBody:
        response = self._send("POST", f"/projects/{project}/deployments/{deployment}/keys", json={"name": name})
        return CreatedTokenBody.model_validate(response.json())

    def audit(self, project: str | None, *, limit: int) -> list[AuditBody]:
        path = f"/projects/{project}/audit" if project else "/audit"
        return [AuditBody.model_validate(e) for e in self._send("GET", path, params={"limit": limit}).json()]

    def members(self, project: str) -> list[MemberBody]:
        return [MemberBody.model_validate(m) for m in self._send("GET", f"/projects/{project}/members").json()]

    def set_member(self, project: str, user: str, role: Role) -> MemberBody:
        response = self._send("PUT", f"/projects/{project}/members/{user}", json={"role": role.name})
        return MemberBody.model_validate(response.json())

    def remove_member(self, project: str, user: str) -> None:
        self._send("DELETE", f"/projects/{project}/members/{user}")

    def quota(self, project: str) -> QuotaBody:
        return QuotaBody.model_validate(self._send("GET", f"/projects/{project}/quota").json())

    def set_quota(self, project: str, quota: QuotaBody) -> QuotaBody:
        response = self._send("PUT", f"/projects/{project}/quota", json=quota.model_dump())
        return QuotaBody.model_validate(response.json())
