"""``match_route_policy``: which action each API route is, and in which project. Pure.

Every ``/api/v1`` route must match a rule here; ``build_control_plane`` refuses to start when one
does not (``unprotected_routes``), and the security tests call every route of the OpenAPI document,
so a new route cannot ship unprotected. Reads are ``GET``/``HEAD``; everything else mutates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelpier.auth.access import Action

# Routes anyone may call: liveness, and the TokenReview webhook, which authenticates the token in
# its body (the kube-apiserver sends no bearer token of ours).
PUBLIC_ROUTES = frozenset({"/healthz", "/apis/authentication.k8s.io/v1/tokenreviews"})
API_PREFIX = "/api/v1"
DEFAULT_PROJECT = "default"
PATH_PROJECT = "{project}"  # the project is the route's ``project`` path parameter
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    action: Action
    project: str | None  # a project name, PATH_PROJECT, or None (platform-wide)


# (path pattern, action for reads, action for writes, project). First match wins.
_RULES: tuple[tuple[str, Action, Action, str | None], ...] = (
    (r"/models(/.*)?", Action.read, Action.write, DEFAULT_PROJECT),  # the registry is the default project's
    (r"/blobs/gc", Action.admin, Action.admin, None),                 # deletes what nobody references
    (r"/blobs(/.*)?", Action.read, Action.write, None),              # content-addressed, shared
    (r"/projects", Action.read, Action.admin, None),
    (r"/projects/\{project\}", Action.read, Action.manage, PATH_PROJECT),
    (r"/projects/\{project\}/(members|quota)(/.*)?", Action.read, Action.manage, PATH_PROJECT),
    (r"/projects/\{project\}/audit", Action.manage, Action.manage, PATH_PROJECT),
    (r"/projects/\{project\}/deployments(/.*)?", Action.read, Action.write, PATH_PROJECT),
    (r"/projects/\{project\}/models(/.*)?", Action.read, Action.write, PATH_PROJECT),
    (r"/deployments", Action.read, Action.admin, None),
    (r"/tokens(/.*)?|/whoami", Action.read, Action.read, None),     # self-service; the service checks more
    (r"/users(/.*)?", Action.admin, Action.admin, None),
    (r"/routing|/audit|/invocations/verify", Action.admin, Action.admin, None),  # gateways and admins
    (r"/traffic|/metrics", Action.admin, Action.admin, None),  # gateways' reports; the Prometheus scrape
)
_COMPILED = tuple((re.compile(p), r, w, proj) for p, r, w, proj in _RULES)


def match_route_policy(method: str, template: str) -> RoutePolicy | None:
    """The policy of ``method template`` (``template`` as routed, e.g. ``/api/v1/models/{name}``);
    None for a route with no rule, which callers treat as forbidden."""
    if not template.startswith(API_PREFIX):
        return None
    rest = template[len(API_PREFIX):]
    for pattern, read, write, project in _COMPILED:
        if pattern.fullmatch(rest):
            return RoutePolicy(read if method.upper() in SAFE_METHODS else write, project)
    return None


def unprotected_routes(routes: list[tuple[str, str]]) -> list[str]:
    """``METHOD path`` of every route that is neither public nor covered by a rule."""
    return [f"{m} {p}" for m, p in routes if p not in PUBLIC_ROUTES and match_route_policy(m, p) is None]


class RouteMatcher:
    """Which route template (``/api/v1/models/{name}``) a concrete ``METHOD path`` is served by.

    Built from the app's OpenAPI paths: templates with fewer parameters win, so a literal segment
    (``/blobs/uploads``) beats a parameter (``/blobs/{digest}``), as in the routers' own order.
    """

    def __init__(self, routes: list[tuple[str, str]]) -> None:
        def compile_template(template: str) -> re.Pattern[str]:
            parts = re.split(r"(\{\w+\})", template)
            return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))

        ordered = sorted(routes, key=lambda mt: mt[1].count("{"))
        self._routes = [(m.upper(), t, compile_template(t)) for m, t in ordered]

    def template(self, method: str, path: str) -> str | None:
        method = "GET" if method.upper() == "HEAD" else method.upper()
        matches = [(m, t) for m, t, rx in self._routes if rx.fullmatch(path)]
        for m, t in matches:
            if m == method:
                return t
        return matches[0][1] if matches else None
