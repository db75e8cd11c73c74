"""``ControlApi``: the control plane's own HTTP API, called with the signed-in user's token.

The dashboard is a client of ``/api/v1`` like the CLI, never a second implementation: every read
and change passes the same authentication, access rules, quotas and audit log, so a viewer gets the
API's 403. In ``pier server`` and ``pier up`` the calls go in-process through an ASGI transport
(no socket, no extra port); any ``httpx.AsyncBaseTransport`` works, so the same class could call a
remote control plane. Error answers become the error tree's classes (``raise_for_error``).
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import quote

import httpx

from modelpier.auth.wire import MemberBody, QuotaBody, WhoAmIBody
from modelpier.control.wire import ApplyResultBody, DeploymentBody, EventBody, LogsBody, RevisionBody
from modelpier.errors import NotFound, RemoteUnreachable
from modelpier.registry.remote import raise_for_error
from modelpier.registry.wire import ModelBody, VersionBody

_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# What the deployment page charts: the last five minutes, one point per five seconds.
TRAFFIC_WINDOW_S = 300
TRAFFIC_STEP_S = 5


def _seg(value: str) -> str:
    """One path segment, quoted: a name from a URL can never reach another API route (``a?b``, ``..``)."""
    return quote(value, safe="") if value not in (".", "..") else quote(value.replace(".", "%2E"), safe="%")


class ControlApi:
    def __init__(self, transport: httpx.AsyncBaseTransport, token: str, *,
                 base_url: str = "http://control-plane") -> None:
        self._base_url = base_url
        self._http = httpx.AsyncClient(transport=transport, base_url=f"{base_url}/api/v1", timeout=_TIMEOUT,
                                       headers={"Authorization": f"Bearer {token}"})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteUnreachable(f"cannot reach the control plane at {self._base_url}: {exc}") from exc
        return raise_for_error(response)

    async def _json(self, path: str, **params: Any) -> Any:
        return (await self._send("GET", path, params=params or None)).json()

    @staticmethod
    def _model(project: str, name: str) -> str:
        return f"/projects/{_seg(project)}/models/{_seg(name)}"

    @staticmethod
    def _deployment(project: str, name: str) -> str:
        return f"/projects/{_seg(project)}/deployments/{_seg(name)}"

    # -- who and where ------------------------------------------------------------------------------
    async def whoami(self) -> WhoAmIBody:
        return WhoAmIBody.model_validate(await self._json("/whoami"))

    async def projects(self) -> list[str]:
        return [str(p["name"]) for p in await self._json("/projects")]

    async def members(self, project: str) -> list[MemberBody]:
        return [MemberBody.model_validate(m) for m in await self._json(f"/projects/{_seg(project)}/members")]

    async def quota(self, project: str) -> QuotaBody:
        return QuotaBody.model_validate(await self._json(f"/projects/{_seg(project)}/quota"))

    # -- registry -----------------------------------------------------------------------------------
    async def models(self, project: str, *, search: str | None = None) -> list[ModelBody]:
        params = {"search": search} if search else {}
        return [ModelBody.model_validate(m) for m in await self._json(f"/projects/{_seg(project)}/models", **params)]

    async def model(self, project: str, name: str) -> ModelBody:
        return ModelBody.model_validate(await self._json(self._model(project, name)))

    async def versions(self, project: str, name: str) -> list[VersionBody]:
        return [VersionBody.model_validate(v) for v in await self._json(self._model(project, name) + "/versions")]

    async def version(self, project: str, name: str, selector: str) -> VersionBody:
        return VersionBody.model_validate(await self._json(self._model(project, name) + f"/versions/{_seg(selector)}"))

    async def set_alias(self, project: str, name: str, alias: str, version: int) -> VersionBody:
        path = self._model(project, name) + f"/aliases/{_seg(alias)}"
        response = await self._send("PUT", path, json={"version": version})
        return VersionBody.model_validate(response.json())

    # -- deployments --------------------------------------------------------------------------------
    async def deployments(self, project: str | None = None) -> list[DeploymentBody]:
        path = f"/projects/{_seg(project)}/deployments" if project else "/deployments"
        return [DeploymentBody.model_validate(d) for d in await self._json(path)]

    async def deployment(self, project: str, name: str) -> DeploymentBody:
        return DeploymentBody.model_validate(await self._json(self._deployment(project, name)))

    async def apply(self, project: str, name: str, document: dict[str, Any]) -> ApplyResultBody:
        response = await self._send("PUT", self._deployment(project, name), json=document)
        return ApplyResultBody.model_validate(response.json())

    async def revisions(self, project: str, name: str) -> list[RevisionBody]:
        found = await self._json(self._deployment(project, name) + "/revisions")
        return [RevisionBody.model_validate(r) for r in found]

    async def rollback(self, project: str, name: str, revision: int | None) -> ApplyResultBody:
        response = await self._send("POST", self._deployment(project, name) + "/rollback", json={"revision": revision})
        return ApplyResultBody.model_validate(response.json())

    async def events(self, project: str, name: str, *, limit: int = 20) -> list[EventBody]:
        found = await self._json(self._deployment(project, name) + "/events", limit=limit)
        return [EventBody.model_validate(e) for e in found]

    async def logs(self, project: str, name: str, *, tail: int) -> list[str] | None:
        """The replicas' last lines, or None when this control plane has no log source (404)."""
        try:
            found = await self._json(self._deployment(project, name) + "/logs", tail=tail)
        except NotFound:
            return None
        return LogsBody.model_validate(found).lines

    async def traffic(self, project: str, name: str) -> dict[str, Any] | None:
        """The traffic summary of the last minutes, or None when the platform has none (404: no
        gateway has reported yet, or a control plane without the traffic endpoint)."""
        try:
            body = await self._json(self._deployment(project, name) + "/traffic",
                                    window=TRAFFIC_WINDOW_S, step=TRAFFIC_STEP_S)
        except NotFound:
            return None
        return body if isinstance(body, dict) else None
