"""Every API route, called as every kind of caller, answers exactly 401/403/404 as docs/security.md says.

Routes come from the server's own OpenAPI document, so a route added without an access rule fails
here (and the server refuses to start: ``check_protected``). Also: tokens never leak into the
server log, the audit log, error messages or later answers; traversal attempts are rejected.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, control_plane

PUBLIC = {("GET", "/healthz"), ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")}
# Calls any authenticated user may make about themselves; the service checks what they touch.
SELF_SERVICE = {("GET", "/api/v1/whoami"), ("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"),
                ("DELETE", "/api/v1/tokens/{token_id}")}
PARAMS = {"project": "acme", "name": "iris", "digest": "sha256:" + "0" * 64, "upload_id": "nope",
          "token_id": "999999", "version": "1", "number": "1", "selector": "1", "alias": "prod", "key": "k",
          "user": "someone"}


@dataclass
class World:
    url: str
    home: Path
    tokens: dict[str, str]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(client: httpx.Client, name: str, user: str) -> str:
    r = client.post("/tokens", json={"name": name, "user": user})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("security")
    with control_plane(home) as url, httpx.Client(base_url=f"{url}/api/v1", headers=ADMIN_HEADERS) as admin:
        for project in ("acme", "other"):
            assert admin.post("/projects", json={"name": project}).status_code == 201
        tokens = {"viewer": _token(admin, "v", "vic"), "outsider": _token(admin, "o", "olga"),
                  "revoked": _token(admin, "r", "rick"), "editor": _token(admin, "e", "eve")}
        for project in ("acme", "default"):
            assert admin.put(f"/projects/{project}/members/vic", json={"role": "viewer"}).status_code == 200
        assert admin.put("/projects/acme/members/eve", json={"role": "editor"}).status_code == 200
        assert admin.put("/projects/other/members/olga", json={"role": "owner"}).status_code == 200
        assert admin.put("/projects/acme/members/rick", json={"role": "owner"}).status_code == 200
        rick = next(t for t in admin.get("/tokens", params={"all": True}).json() if t["user"] == "rick")
        assert admin.delete(f"/tokens/{rick['id']}").status_code == 200
        yield World(url, home, tokens)


def _routes(world: World) -> list[tuple[str, str]]:
    spec = httpx.get(f"{world.url}/openapi.json").json()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    assert len(routes) > 30  # the document really lists the API
    return routes


def _call(world: World, method: str, template: str, headers: dict[str, str]) -> httpx.Response:
    path = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], template)
    body: Any = {} if method in ("POST", "PUT", "PATCH") else None
    return httpx.request(method, world.url + path, json=body, headers=headers, timeout=30)


def test_every_route_needs_a_valid_token(world: World) -> None:
    for method, template in _routes(world):
        if (method, template) in PUBLIC:
            continue
        for headers in ({}, _bearer(world.tokens["revoked"]), _bearer("pier_made-up"), {"Authorization": "Basic x"}):
            r = _call(world, method, template, headers)
            assert r.status_code == 401, (method, template, headers, r.text)
            if method != "HEAD":
                assert r.json()["error"]["code"] == "unauthenticated"


def test_a_viewer_cannot_change_anything(world: World) -> None:
    for method, template in _routes(world):
        if method in ("GET", "HEAD") or (method, template) in PUBLIC | SELF_SERVICE:
            continue
        r = _call(world, method, template, _bearer(world.tokens["viewer"]))
        assert r.status_code == 403, (method, template, r.text)


def test_another_projects_resources_do_not_exist(world: World) -> None:
    for method, template in _routes(world):
        if not (template.startswith("/api/v1/projects/{project}") or template.startswith("/api/v1/models")):
            continue
        r = _call(world, method, template, _bearer(world.tokens["outsider"]))
        assert r.status_code == 404, (method, template, r.text)


def test_admin_only_routes_refuse_members(world: World) -> None:
    for method, path in (("GET", "/api/v1/audit"), ("POST", "/api/v1/projects")):
        r = _call(world, method, path, _bearer(world.tokens["editor"]))
        assert r.status_code == 403, (method, path, r.text)


def test_listings_show_only_the_callers_projects(world: World) -> None:
    r = httpx.get(f"{world.url}/api/v1/projects", headers=_bearer(world.tokens["outsider"]))
    assert [p["name"] for p in r.json()] == ["other"]


def test_tokens_never_leak_after_creation(world: World) -> None:
    for token in world.tokens.values():
        for path in ("/api/v1/tokens?all=true", "/api/v1/audit?limit=1000"):
            assert token not in httpx.get(world.url + path, headers=ADMIN_HEADERS).text
        r = httpx.get(f"{world.url}/api/v1/models", headers=_bearer(world.tokens["revoked"]))
        assert world.tokens["revoked"] not in r.text
    log = (world.home / "server.log").read_text()
    for token in [*world.tokens.values(), ADMIN_TOKEN]:
        assert token not in log


def test_mutating_calls_are_audited_with_who_and_result(world: World) -> None:
    _call(world, "DELETE", "/api/v1/projects/{project}/deployments/{name}", _bearer(world.tokens["viewer"]))
    entries = httpx.get(f"{world.url}/api/v1/audit", params={"limit": 1000}, headers=ADMIN_HEADERS).json()
    assert {"user": "vic", "method": "DELETE", "path": "/api/v1/projects/acme/deployments/iris",
            "project": "acme", "status": 403}.items() <= entries[-1].items()
    owner_view = httpx.get(f"{world.url}/api/v1/projects/other/audit", headers=_bearer(world.tokens["outsider"]))
    assert owner_view.status_code == 200
    assert all(e["project"] == "other" for e in owner_view.json())


@pytest.mark.parametrize("path", ["/api/v1/models/..%2F..%2Fetc", "/api/v1/models/a/versions/..%2F..",
                                  "/api/v1/blobs/..%2F..%2Fsecret", "/api/v1/blobs/sha256:..%2F..%2Fsecret",
                                  "/api/v1/projects/..%2Fother/deployments", "/api/v1/projects/%2e%2e/members"])
def test_traversal_attempts_are_rejected(world: World, path: str) -> None:
    r = httpx.get(world.url + path, headers=ADMIN_HEADERS)
    assert r.status_code in (400, 404, 422), (path, r.status_code, r.text)
    assert "secret" not in r.text or r.status_code != 200


def test_token_review_webhook(world: World) -> None:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": world.tokens["editor"]}}
    r = httpx.post(f"{world.url}/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()
    assert r["status"]["authenticated"] is True
    assert r["status"]["user"]["username"] == "eve"
    assert "modelpier:acme:editor" in r["status"]["user"]["groups"]
    assert world.tokens["editor"] not in str(r)
    review["spec"] = {"token": world.tokens["revoked"]}
    r = httpx.post(f"{world.url}/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()
    assert r["status"]["authenticated"] is False


def test_models_belong_to_their_project(world: World) -> None:
    editor = _bearer(world.tokens["editor"])
    blob = b"weights"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    up = httpx.post(f"{world.url}/api/v1/blobs/uploads", headers=editor)
    assert up.status_code == 201, up.text
    upload = up.json()["upload_id"]
    assert httpx.patch(f"{world.url}/api/v1/blobs/uploads/{upload}", content=blob,
                       headers={**editor, "Upload-Offset": "0"}).status_code == 200
    assert httpx.put(f"{world.url}/api/v1/blobs/uploads/{upload}", headers=editor,
                     params={"digest": digest}).status_code == 201
    version = {"flavor": "python", "files": [{"path": "model.pkl", "digest": digest, "size": len(blob)}]}
    made = httpx.post(f"{world.url}/api/v1/projects/acme/models/secret-model/versions", headers=editor, json=version)
    assert made.status_code == 201, made.text
    assert [m["name"] for m in httpx.get(f"{world.url}/api/v1/projects/acme/models", headers=editor).json()] \
        == ["secret-model"]
    # Not in the default project's registry, not reachable through another project, even for the admin.
    assert httpx.get(f"{world.url}/api/v1/models/secret-model", headers=ADMIN_HEADERS).status_code == 404
    assert httpx.get(f"{world.url}/api/v1/projects/other/models/secret-model",
                     headers=ADMIN_HEADERS).status_code == 404
    outsider = _bearer(world.tokens["outsider"])
    assert httpx.get(f"{world.url}/api/v1/projects/acme/models/secret-model", headers=outsider).status_code == 404
    viewer = httpx.get(f"{world.url}/api/v1/projects/acme/models/secret-model/versions/1",
                       headers=_bearer(world.tokens["viewer"]))
    assert viewer.status_code == 200
    # Nor deployable from another project: answered as if it did not exist.
    document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "steal"},
                "spec": {"predictors": [{"name": "main", "model": "secret-model:1"}]}}
    stolen = httpx.put(f"{world.url}/api/v1/projects/other/deployments/steal", json=document, headers=outsider)
    assert stolen.status_code == 404, stolen.text
    assert "does not exist" in stolen.json()["error"]["message"]


def test_pushes_count_against_the_storage_quota(world: World) -> None:
    assert httpx.put(f"{world.url}/api/v1/projects/other/quota", headers=ADMIN_HEADERS,
                     json={"storage_bytes": 10}).status_code == 200
    digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
    version = {"flavor": "python", "files": [{"path": "m.bin", "digest": digest, "size": 11}]}
    r = httpx.post(f"{world.url}/api/v1/projects/other/models/big/versions", json=version,
                   headers=_bearer(world.tokens["outsider"]))
    assert r.status_code == 403
    assert r.json()["error"]["details"]["exceeded"] == [
        {"quota": "storage_bytes", "limit": 10, "would_use": 11, "over_by": 1}]


def test_gateway_token_checks_answer_and_are_not_audited(world: World) -> None:
    check = {"project": "acme", "deployment": "iris", "token": world.tokens["viewer"]}
    r = httpx.post(f"{world.url}/api/v1/invocations/verify", json=check, headers=ADMIN_HEADERS)
    assert r.json() == {"allowed": True}
    check["token"] = world.tokens["outsider"]
    assert httpx.post(f"{world.url}/api/v1/invocations/verify", json=check, headers=ADMIN_HEADERS).json() \
        == {"allowed": False}
    audit = httpx.get(f"{world.url}/api/v1/audit", params={"limit": 1000}, headers=ADMIN_HEADERS).json()
    assert all(e["path"] != "/api/v1/invocations/verify" for e in audit)
