"""Authentication, authorization and audit for the control plane's HTTP API.

``install_security`` adds one app-wide dependency that runs before every route handler: it reads the
bearer token, authenticates it (401), matches the route's policy (``control.policy``) and asks the
pure ``auth.access.decide_access`` (403, or 404 for another tenant's project). An ASGI middleware
writes one audit entry per mutating call after the response has started, with the status. Neither
ever logs or records the token.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelpier.auth.access import Deny, Principal, decide_access
from modelpier.auth.service import AuthService
from modelpier.auth.sql.store import SqlAuthStore
from modelpier.control.api.policy import (
    PATH_PROJECT,
    PUBLIC_ROUTES,
    SAFE_METHODS,
    RouteMatcher,
    match_route_policy,
)
from modelpier.errors import Forbidden, InvalidInput, NotFound, PierError, Unauthenticated

_PRINCIPAL = "pier_principal"
# POSTs that change nothing: a gateway's token checks (one per caller token per cache period), and its
# traffic reports (one a second per gateway: observations, not changes).
NOT_AUDITED = frozenset({"/api/v1/invocations/verify", "/api/v1/traffic"})
_PROJECT = "pier_project"


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("the Authorization header must use the Bearer scheme")
    return value.strip() or None


def principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get(_PRINCIPAL)
    if not isinstance(principal, Principal):  # only reachable if a route escaped the dependency
        raise Unauthenticated("this call needs an API token")
    return principal


def denial(decision: Deny) -> PierError:
    return NotFound(decision.reason) if decision.status == 404 else Forbidden(decision.reason)


def openapi_routes(app: FastAPI) -> list[tuple[str, str]]:
    """``(METHOD, template)`` of every documented route, as the app serves them now."""
    spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
    return [(m.upper(), path) for path, ops in spec.get("paths", {}).items() for m in ops]


def install_security(app: FastAPI, auth: AuthService) -> None:
    # Built at the first request, when every router (also those added after build) is in place;
    # matched against the documented routes because FastAPI's scope does not reliably carry the
    # full template of a route from an included router.
    matcher: list[RouteMatcher] = []

    async def authorize(request: Request) -> None:
        if not matcher:
            matcher.append(RouteMatcher(openapi_routes(app)))
        path = request.scope["path"]
        template = matcher[0].template(request.method, path) or path
        sent = request.headers.getlist("authorization")
        if len(sent) > 1:  # Starlette reads the first, the gateway read the last: one caller, two identities
            raise InvalidInput(f"the request has {len(sent)} Authorization headers; send exactly one",
                               details={"header": "authorization"})
        if template in PUBLIC_ROUTES:
            return
        token = bearer_token(sent[0] if sent else None)
        principal = await run_in_threadpool(auth.authenticate, token)
        state = request.scope.setdefault("state", {})
        state[_PRINCIPAL] = principal
        policy = match_route_policy(request.method, template)
        if policy is None:  # fail closed; build_control_plane also refuses to start with one
            raise Forbidden(f"{request.method} {template} has no access rule")
        project = request.path_params.get("project") if policy.project == PATH_PROJECT else policy.project
        state[_PROJECT] = project
        decision = decide_access(principal, policy.action, project)
        if isinstance(decision, Deny):
            raise denial(decision)

    app.router.dependencies.append(Depends(authorize))
    app.add_middleware(AuditMiddleware, store=auth.store)


class AuditMiddleware:
    """Records every mutating ``/api/v1`` call: who, method and path, project, resulting status."""

    def __init__(self, app: ASGIApp, store: SqlAuthStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not scope["path"].startswith("/api/") \
                or scope["path"] in NOT_AUDITED:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            principal = state.get(_PRINCIPAL)
            await run_in_threadpool(
                self.store.record, user=principal.user if isinstance(principal, Principal) else "anonymous",
                method=scope["method"], path=scope["path"], project=state.get(_PROJECT), status=status)
