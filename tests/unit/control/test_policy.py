from __future__ import annotations

import pytest

from modelpier.auth.access import Action
from modelpier.control.api.policy import PATH_PROJECT, RouteMatcher, RoutePolicy, match_route_policy, unprotected_routes


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/api/v1/models/{name}", RoutePolicy(Action.read, "default")),
    ("POST", "/api/v1/models/{name}/versions", RoutePolicy(Action.write, "default")),
    ("PUT", "/api/v1/blobs/uploads/{upload_id}", RoutePolicy(Action.write, None)),
    ("POST", "/api/v1/projects", RoutePolicy(Action.admin, None)),
    ("DELETE", "/api/v1/projects/{project}", RoutePolicy(Action.manage, PATH_PROJECT)),
    ("PUT", "/api/v1/projects/{project}/members/{user}", RoutePolicy(Action.manage, PATH_PROJECT)),
    ("GET", "/api/v1/projects/{project}/audit", RoutePolicy(Action.manage, PATH_PROJECT)),
    ("PUT", "/api/v1/projects/{project}/deployments/{name}", RoutePolicy(Action.write, PATH_PROJECT)),
    ("GET", "/api/v1/routing", RoutePolicy(Action.admin, None)),
])
def test_routes_map_to_actions(method: str, path: str, expected: RoutePolicy) -> None:
    assert match_route_policy(method, path) == expected


def test_an_unknown_route_is_reported_unprotected() -> None:
    assert unprotected_routes([("GET", "/healthz"), ("GET", "/api/v1/models"), ("POST", "/api/v1/new-thing")]) \
        == ["POST /api/v1/new-thing"]


def test_the_matcher_finds_the_template_preferring_literal_segments() -> None:
    matcher = RouteMatcher([("GET", "/api/v1/blobs/{digest}"), ("POST", "/api/v1/blobs/uploads"),
                            ("GET", "/api/v1/blobs/uploads/{upload_id}"), ("PUT", "/api/v1/models/{name}")])
    assert matcher.template("POST", "/api/v1/blobs/uploads") == "/api/v1/blobs/uploads"
    assert matcher.template("HEAD", "/api/v1/blobs/sha256:ab") == "/api/v1/blobs/{digest}"
    assert matcher.template("GET", "/api/v1/blobs/uploads/u1") == "/api/v1/blobs/uploads/{upload_id}"
    assert matcher.template("DELETE", "/api/v1/models/iris") == "/api/v1/models/{name}"  # 405 later, still ruled
    assert matcher.template("GET", "/api/v1/models/a/b") is None
