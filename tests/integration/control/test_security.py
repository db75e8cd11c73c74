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
    for method, path in (("GET", "/api/v1/audit"), ("POST", "/api/v1/projects"), ("GET", "/api/v1/users"),
                         ("DELETE", "/api/v1/users/{user}")):
        r = _call(world, method, path, _bearer(world.tokens["editor"]))
        assert r.status_code == 403, (method, path, r.text)


def test_listings_show_only_the_callers_projects(world: World) -> None:
    r = httpx.get(f"{world.url}/api/v1/projects", headers=_bearer(world.tokens["outsider"]))
    assert [p["name"] for p in r.json()] == ["other"]


def test_a_minted_token_never_appears_after_its_creation(world: World) -> None:
    """Mint a token now, use it every way there is (allowed, refused, malformed, after revocation),
    then look for it in every answer, the audit log and every file under PIER_HOME (the server's
    log, the database): it must appear only in the answer to its creation."""
    admin = _bearer(ADMIN_TOKEN)
    created = httpx.post(f"{world.url}/api/v1/tokens", json={"name": "leak-check", "user": "lena"}, headers=admin)
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    assert httpx.put(f"{world.url}/api/v1/projects/acme/members/lena", json={"role": "viewer"},
                     headers=admin).status_code == 200
    answers: list[httpx.Response] = []

    def call(method: str, path: str, headers: dict[str, str], expect: int, **kwargs: Any) -> None:
        r = httpx.request(method, world.url + path, headers=headers, timeout=30, **kwargs)
        assert r.status_code == expect, (method, path, r.status_code, r.text)
        answers.append(r)

    mine = _bearer(token)
    call("GET", "/api/v1/whoami", mine, 200)
    call("GET", "/api/v1/tokens", mine, 200)
    call("GET", "/api/v1/projects/acme/deployments", mine, 200)
    call("DELETE", "/api/v1/projects/acme/deployments/iris", mine, 403)
    call("GET", "/api/v1/projects/other/deployments", mine, 404)
    call("POST", "/api/v1/tokens", mine, 422, json={"name": "not a name!", "expires_in_s": -1})
    call("POST", "/api/v1/projects/acme/models/m/versions", mine, 403, json={"flavor": "python", "files": []})
    call("GET", "/api/v1/users", mine, 403)
    for header in (f"Basic {token}", f"Bearer {token}x", f"Bearer x{token}", token, f"Bearer {token[:-1]}"):
        call("GET", "/api/v1/whoami", {"Authorization": header}, 401)
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {}, 200, json=review)
    call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {}, 200,
         json={**review, "spec": {"token": token + "x"}})
    check = {"project": "acme", "deployment": "iris", "token": token}
    call("POST", "/api/v1/invocations/verify", admin, 200, json=check)
    call("POST", "/api/v1/invocations/verify", admin, 422, json={**check, "project": "p" * 100})
    call("GET", "/api/v1/tokens", admin, 200, params={"all": True})
    call("GET", "/api/v1/tokens", admin, 200, params={"all": True, "search": token})
    call("GET", "/api/v1/users", admin, 200)
    call("DELETE", f"/api/v1/tokens/{token_id}", admin, 200)
    call("GET", "/api/v1/whoami", mine, 401)
    call("DELETE", f"/api/v1/tokens/{token_id}", mine, 401)
    call("GET", "/api/v1/audit", admin, 200, params={"limit": 1000})
    call("GET", "/api/v1/projects/acme/audit", admin, 200, params={"limit": 1000})
    assert any(e["user"] == "lena" for e in answers[-2].json())  # the audit did record her calls
    for r in answers:
        assert token not in r.text, (r.request.method, r.request.url)
        assert token not in str(r.headers)
    files = [p for p in world.home.rglob("*") if p.is_file()]
    assert any(p.name == "server.log" for p in files)
    for path in files:  # logs, the database (which keeps an HMAC of it), uploads, the secret
        assert token.encode() not in path.read_bytes(), path


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


def _upload(world: World, headers: dict[str, str], blob: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    upload = httpx.post(f"{world.url}/api/v1/blobs/uploads", headers=headers).json()["upload_id"]
    assert httpx.patch(f"{world.url}/api/v1/blobs/uploads/{upload}", content=blob,
                       headers={**headers, "Upload-Offset": "0"}).status_code == 200
    assert httpx.put(f"{world.url}/api/v1/blobs/uploads/{upload}", headers=headers,
                     params={"digest": digest}).status_code == 201
    return {"path": f"{digest[7:15]}.bin", "digest": digest, "size": len(blob)}


def test_pushes_count_against_the_storage_quota_each_blob_once(world: World) -> None:
    owner = _bearer(world.tokens["outsider"])
    # Uploaded before the quota is set: an upload in progress counts against it too (test_upload_quota.py).
    six, four, eleven = (_upload(world, owner, b"x" * n) for n in (6, 4, 11))
    assert httpx.put(f"{world.url}/api/v1/projects/other/quota", headers=owner,
                     json={"storage_bytes": 10}).status_code == 200

    def push(model: str, *files: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{world.url}/api/v1/projects/other/models/{model}/versions", headers=owner,
                          json={"flavor": "python", "files": list(files)})

    r = push("big", eleven)
    assert r.status_code == 403
    assert r.json()["error"]["details"]["exceeded"] == [
        {"quota": "storage_bytes", "limit": 10, "would_use": 11, "over_by": 1}]
    assert push("small", six).status_code == 201
    again = push("small", six)  # an identical re-push stores nothing: not refused, not counted
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert push("small", six, four).status_code == 201  # six is stored already: 6 + 4 = 10
    assert push("other-model", four).status_code == 201  # the same blob, another model: counted once
    refused = push("small", six, four, eleven)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["exceeded"][0]["would_use"] == 21
    assert httpx.get(f"{world.url}/api/v1/projects/other/models/big", headers=owner).status_code == 404
    # A client cannot declare a smaller size than its blob's to slip under the quota.
    lying = push("small", {**eleven, "size": 0})
    assert lying.status_code == 400
    assert "holds 11" in lying.json()["error"]["message"]
    assert httpx.put(f"{world.url}/api/v1/projects/other/quota", headers=owner, json={}).status_code == 200


def test_model_names_are_unique_per_project_not_across_them(world: World) -> None:
    editor, owner = _bearer(world.tokens["editor"]), _bearer(world.tokens["outsider"])
    mine = _upload(world, editor, b"acme's weights")
    theirs = _upload(world, owner, b"other's")
    made = httpx.post(f"{world.url}/api/v1/projects/acme/models/twin/versions", headers=editor,
                      json={"flavor": "python", "files": [mine]})
    assert made.status_code == 201
    # Another project registers the same name: its own model, not a 409 that would reveal acme's.
    made = httpx.post(f"{world.url}/api/v1/projects/other/models/twin/versions", headers=owner,
                      json={"flavor": "python", "files": [theirs]})
    assert made.status_code == 201, made.text
    assert made.json()["version"] == 1
    got = httpx.get(f"{world.url}/api/v1/projects/other/models/twin/versions/1", headers=owner).json()
    assert got["files"] == [theirs]
    assert httpx.put(f"{world.url}/api/v1/projects/other/models/twin/aliases/prod", headers=owner,
                     json={"version": 1}).status_code == 200
    acme = httpx.get(f"{world.url}/api/v1/projects/acme/models/twin", headers=editor).json()
    assert (acme["project"], acme["aliases"]) == ("acme", {})


def test_an_admin_cannot_register_into_a_project_that_does_not_exist(world: World) -> None:
    blob = _upload(world, ADMIN_HEADERS, b"orphan")
    for method, path, body in (("POST", "/api/v1/projects/nope/models/m/versions",
                                {"flavor": "python", "files": [blob]}),
                               ("GET", "/api/v1/projects/nope/models", None),
                               ("GET", "/api/v1/projects/nope/models/m", None)):
        r = httpx.request(method, world.url + path, json=body, headers=ADMIN_HEADERS)
        assert r.status_code == 404, (path, r.text)
        assert "project 'nope' does not exist" in r.json()["error"]["message"]
    assert httpx.post(f"{world.url}/api/v1/projects", json={"name": "nope"}, headers=ADMIN_HEADERS).status_code == 201
    assert httpx.post(f"{world.url}/api/v1/projects/nope/models/m/versions", headers=ADMIN_HEADERS,
                      json={"flavor": "python", "files": [blob]}).status_code == 201
    # default always exists, under both of its paths.
    assert httpx.post(f"{world.url}/api/v1/projects/default/models/m/versions", headers=ADMIN_HEADERS,
                      json={"flavor": "python", "files": [blob]}).status_code == 201


def test_admins_list_and_delete_users(world: World) -> None:
    with httpx.Client(base_url=f"{world.url}/api/v1", headers=ADMIN_HEADERS) as admin:
        minted = _token(admin, "t", "temp")
    assert httpx.put(f"{world.url}/api/v1/projects/acme/members/temp", json={"role": "editor"},
                     headers=ADMIN_HEADERS).status_code == 200
    users = httpx.get(f"{world.url}/api/v1/users", headers=ADMIN_HEADERS).json()
    temp = next(u for u in users if u["name"] == "temp")
    assert (temp["admin"], temp["roles"]) == (False, {"acme": "editor"})
    assert next(u for u in users if u["name"] == "admin")["admin"] is True
    assert httpx.get(f"{world.url}/api/v1/whoami", headers=_bearer(minted)).status_code == 200
    assert httpx.delete(f"{world.url}/api/v1/users/temp", headers=ADMIN_HEADERS).status_code == 204
    gone = httpx.get(f"{world.url}/api/v1/whoami", headers=_bearer(minted))
    assert gone.status_code == 401
    assert "temp" not in [m["user"] for m in
                          httpx.get(f"{world.url}/api/v1/projects/acme/members", headers=ADMIN_HEADERS).json()]
    for user, status, says in (("temp", 404, "user 'temp' does not exist"), ("admin", 409, "your own user"),
                               ("No_Such", 404, "does not exist")):
        r = httpx.delete(f"{world.url}/api/v1/users/{user}", headers=ADMIN_HEADERS)
        assert r.status_code == status, (user, r.text)
        assert says in r.json()["error"]["message"]


def test_gateway_token_checks_answer_and_are_not_audited(world: World) -> None:
    check = {"project": "acme", "deployment": "iris", "token": world.tokens["viewer"]}
    r = httpx.post(f"{world.url}/api/v1/invocations/verify", json=check, headers=ADMIN_HEADERS)
    assert r.json() == {"allowed": True}
    check["token"] = world.tokens["outsider"]
    assert httpx.post(f"{world.url}/api/v1/invocations/verify", json=check, headers=ADMIN_HEADERS).json() \
        == {"allowed": False}
    audit = httpx.get(f"{world.url}/api/v1/audit", params={"limit": 1000}, headers=ADMIN_HEADERS).json()
    assert all(e["path"] != "/api/v1/invocations/verify" for e in audit)


def test_two_authorization_headers_are_refused(world: World) -> None:
    # The control plane used the first and the gateway the last: one request, two identities.
    headers = [("Authorization", f"Bearer {world.tokens['viewer']}"), ("Authorization", f"Bearer {ADMIN_TOKEN}")]
    for path in ("/api/v1/projects", "/api/v1/projects/acme/models", "/healthz"):
        r = httpx.get(f"{world.url}{path}", headers=headers)
        assert r.status_code == 400, (path, r.text)
        assert "2 Authorization headers" in r.json()["error"]["message"]
