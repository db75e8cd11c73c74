"""The dashboard over HTTP, without a browser: a real `pier server` process, driven with httpx.

Sign-in and its cookie, CSRF on every form, redirects for anonymous visitors, error pages with the
API's status and message (never a traceback), the API's own access rules (a viewer's change is the
API's 403), security headers, and the vendored assets. The browser tests (test_browser.py) cover
the pages' behaviour end to end against `pier up`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, control_plane

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    home: Path
    viewer_token: str


def _register_models(home: Path) -> None:
    registry = build_registry(load_settings(home=home))
    try:
        for version in (1, 2):
            folder = home / f"artifact-{version}"
            folder.mkdir(parents=True)
            (folder / "model.bin").write_bytes(f"weights {version}".encode())
            # Version 2 was saved with a scikit-learn this platform does not have, and locked to it.
            environment = {"python": "3.11.2", "packages": {"scikit-learn": "1.5.2"},
                           "lock": {"python": "3.11.2", "source": "user",
                                    "packages": [{"name": "scikit-learn", "version": "1.5.2"}]}} \
                if version == 2 else {}
            registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder),
                                         tags={"team": "ml"}, metrics={"acc": 0.9}, source="tests",
                                         environment=environment))
        registry.set_alias("iris", "production", 1)
    finally:
        registry.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("dashboard-pages")
    _register_models(home)
    with control_plane(home) as url, httpx.Client(base_url=f"{url}/api/v1", headers=ADMIN_HEADERS) as admin:
        created = admin.post("/tokens", json={"name": "v", "user": "vic"})
        assert created.status_code == 201, created.text
        assert admin.put("/projects/default/members/vic", json={"role": "viewer"}).status_code == 200
        yield Server(url, home, str(created.json()["token"]))


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name} in the page"
    return found.group(1)


@contextmanager
def sign_in(url: str, token: str) -> Iterator[httpx.Client]:
    """A client signed in through the form, as a browser does (cookies kept, redirects not followed)."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        page = client.get("/ui/login")
        response = client.post("/ui/login", data={"token": token, "login_csrf": _hidden(page.text, "login_csrf"),
                                                  "next": "/ui/models"})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/ui/models"
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    return _hidden(client.get(path).text, "csrf")


def test_anonymous_visitors_are_sent_to_sign_in(server: Server) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        assert client.get("/").headers["location"] == "/ui/"
        for path in ("/ui/models", "/ui/projects/default/deployments/iris", "/ui/projects"):
            r = client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/ui/login?next=")
        polled = client.get("/ui/projects/default/deployments/iris/status", headers={"HX-Request": "true"})
        assert (polled.status_code, polled.headers["hx-redirect"].startswith("/ui/login")) == (401, True)
        assert client.post("/ui/projects/default/models/iris/alias", data={"alias": "x"}).status_code == 303


def test_sign_in_sets_a_hardened_cookie_and_refuses_bad_tokens(server: Server) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        page = client.get("/ui/login")
        assert page.status_code == 200
        headers = page.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert (headers["x-frame-options"], headers["x-content-type-options"]) == ("DENY", "nosniff")
        csrf = _hidden(page.text, "login_csrf")
        wrong = client.post("/ui/login", data={"token": "pier_made-up", "login_csrf": csrf})
        assert wrong.status_code == 401
        assert "That token was not accepted" in wrong.text
        assert "pier_made-up" not in wrong.text
        forged = httpx.post(f"{server.url}/ui/login", data={"token": ADMIN_TOKEN, "login_csrf": "guess"})
        assert forged.status_code == 403
        assert "pier_session" not in forged.headers.get("set-cookie", "")
        ok = client.post("/ui/login", data={"token": ADMIN_TOKEN, "login_csrf": csrf, "next": "https://evil.example/"})
        assert (ok.status_code, ok.headers["location"]) == (303, "/ui/")
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("pier_session=")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/ui/" in cookie
        assert ADMIN_TOKEN not in cookie
        home = client.get("/ui/models")
        assert home.status_code == 200
        assert "Signed in as admin" in home.text


def test_pages_render_the_registry(server: Server) -> None:
    with sign_in(server.url, ADMIN_TOKEN) as client:
        listing = client.get("/ui/models", params={"q": "ir", "tag": "team=ml", "flavor": "python"})
        assert listing.status_code == 200
        assert 'href="/ui/projects/default/models/iris"' in listing.text
        assert "production → v1" in listing.text
        none = client.get("/ui/models", params={"flavor": "onnx"})
        assert "0 of 1 model match the filters" in none.text
        model = client.get("/ui/projects/default/models/iris", params={"version": "2"})
        assert model.status_code == 200
        for shown in ("Version 2", "sha256:", "acc", "tests", "team=ml", "scikit-learn==1.5.2",
                      "Environment skew", "scikit-learn: the model was saved with 1.5.2, this environment has 1.9"):
            assert shown in model.text
        assert client.get("/ui/projects").status_code == 200
        project = client.get("/ui/projects/default")
        assert "Model storage" in project.text
        assert "vic" in project.text


def test_forms_need_the_sessions_csrf_token(server: Server) -> None:
    with sign_in(server.url, ADMIN_TOKEN) as client:
        path = "/ui/projects/default/models/iris/alias"
        refused = client.post(path, data={"alias": "staging", "version": "2", "csrf": "stale"})
        assert refused.status_code == 403
        assert "CSRF token" in refused.text
        csrf = csrf_of(client, "/ui/projects/default/models/iris")
        moved = client.post(path, data={"alias": "staging", "version": "2", "csrf": csrf})
        assert (moved.status_code, moved.headers["location"]) == (303, "/ui/projects/default/models/iris?version=2")
        assert "Alias iris:staging now points at version 2" in client.get(moved.headers["location"]).text
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=ADMIN_HEADERS) as api:
            assert api.get("/models/iris/versions/staging").json()["version"] == 2
            audit = api.get("/audit", params={"limit": 1000}).json()
        assert any(e["path"] == "/api/v1/models/iris/aliases/staging" or
                   e["path"] == "/api/v1/projects/default/models/iris/aliases/staging" for e in audit)


def test_errors_are_pages_with_the_apis_status_and_message(server: Server) -> None:
    with sign_in(server.url, ADMIN_TOKEN) as client:
        missing = client.get("/ui/projects/default/models/nope")
        assert missing.status_code == 404
        assert "nope" in missing.text
        assert "Traceback" not in missing.text
        assert client.get("/ui/projects/default/models/iris", params={"version": "9"}).status_code == 404
        assert client.get("/ui/no/such/page").status_code == 404
        csrf = csrf_of(client, "/ui/projects/default/models/iris")
        bad = client.post("/ui/projects/default/models/iris/alias", data={"alias": "Not A Name", "version": "1",
                                                                            "csrf": csrf})
        assert bad.status_code == 422
        assert "alias" in bad.text.lower()
        assert "Traceback" not in bad.text
        deploy = client.post("/ui/projects/default/models/iris/deploy",
                             data={"deployment": "web", "reference": "iris:1", "replicas": "many", "csrf": csrf})
        assert deploy.status_code == 400
        assert "replicas must be a whole number" in deploy.text


def test_a_viewer_gets_the_apis_403_on_a_change(server: Server) -> None:
    with sign_in(server.url, server.viewer_token) as client:
        assert client.get("/ui/projects/default/models/iris").status_code == 200
        csrf = csrf_of(client, "/ui/projects/default/models/iris")
        refused = client.post("/ui/projects/default/models/iris/alias",
                              data={"alias": "production", "version": "2", "csrf": csrf})
        assert refused.status_code == 403
        assert "viewer" in refused.text
        assert "Not allowed" in refused.text


def test_deploy_then_read_its_pages_without_a_gateway(server: Server) -> None:
    with sign_in(server.url, ADMIN_TOKEN) as client:
        csrf = csrf_of(client, "/ui/projects/default/models/iris")
        deployed = client.post("/ui/projects/default/models/iris/deploy",
                               data={"project": "default", "deployment": "web", "reference": "iris:production",
                                     "replicas": "1", "follow": "on", "csrf": csrf})
        assert (deployed.status_code, deployed.headers["location"]) == (303, "/ui/projects/default/deployments/web")
        page = client.get(deployed.headers["location"])
        assert page.status_code == 200
        assert "Deployed iris:production as default/web: revision 1" in page.text
        base = "/ui/projects/default/deployments/web"
        status = client.get(f"{base}/status", headers={"HX-Request": "true"})
        assert status.status_code == 200
        assert "Predictors" in status.text
        logs = client.get(f"{base}/logs", headers={"HX-Request": "true"})
        assert logs.status_code == 200
        assert "no replica logs" in logs.text
        traffic = client.get(f"{base}/traffic.json")
        assert traffic.status_code == 200
        charts = traffic.json()  # zeros from the traffic endpoint, or "no traffic data yet" without one
        assert [c["id"] for c in charts["charts"]] == ["requests", "errors", "latency", "replicas"] \
            if charts["available"] else charts["message"] == "no traffic data yet"
        assert client.get("/ui/projects/default/deployments/nope/traffic.json").json()["available"] is False
        tryit = client.get(f"{base}/try")
        assert tryit.status_code == 200
        assert "Request body" in tryit.text
        sent = client.post(f"{base}/try", data={"csrf": csrf, "model": "iris", "body": _hidden_body(tryit.text)})
        assert sent.status_code == 503  # no gateway: said on the page, not a traceback
        assert "knows no gateway" in sent.text
        bad = client.post(f"{base}/try", headers={"HX-Request": "true"},
                          data={"csrf": csrf, "model": "iris", "body": "{not json"})
        assert bad.status_code == 200
        assert "not valid JSON" in bad.text


def _hidden_body(html: str) -> str:
    found = re.search(r'<textarea id="body"[^>]*>([^<]*)</textarea>', html)
    assert found
    return found.group(1).replace("&#34;", '"').replace("&quot;", '"')


def test_rollback_from_the_page(server: Server) -> None:
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=ADMIN_HEADERS) as api:
        document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "rb"},
                    "spec": {"predictors": [{"name": "main", "model": "iris:1"}]}}
        assert api.put("/projects/default/deployments/rb", json=document).status_code == 201
        document["spec"]["predictors"][0]["model"] = "iris:2"  # type: ignore[index]
        assert api.put("/projects/default/deployments/rb", json=document).status_code == 201
    with sign_in(server.url, ADMIN_TOKEN) as client:
        page = client.get("/ui/projects/default/deployments/rb")
        assert 'aria-label="Roll back to revision 1"' in page.text
        assert 'aria-label="Roll back to revision 2"' not in page.text  # the latest
        done = client.post("/ui/projects/default/deployments/rb/rollback",
                           data={"revision": "1", "csrf": _hidden(page.text, "csrf")})
        assert done.status_code == 303
        after = client.get(done.headers["location"])
        assert "revision 3 rolls out" in after.text
        assert "rollback to revision 1" in after.text


def test_signing_out_and_revoked_tokens_end_the_session(server: Server) -> None:
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=ADMIN_HEADERS) as api:
        token = api.post("/tokens", json={"name": "short", "user": "admin"}).json()
    with sign_in(server.url, token["token"]) as client:
        assert client.get("/ui/models").status_code == 200
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=ADMIN_HEADERS) as api:
            assert api.delete(f"/tokens/{token['id']}").status_code == 200
        gone = client.get("/ui/models")
        assert (gone.status_code, gone.headers["location"]) == (303, "/ui/login?next=%2Fui%2Fmodels&expired=1")
        assert client.get("/ui/models").status_code == 303  # the session itself ended
    with sign_in(server.url, ADMIN_TOKEN) as client:
        csrf = csrf_of(client, "/ui/models")
        out = client.post("/ui/logout", data={"csrf": csrf})
        assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
        assert client.get("/ui/models").status_code == 303


def test_static_assets_are_vendored_with_licenses_and_the_api_lists_no_ui_routes(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for path in ("/ui/static/vendor/htmx/htmx.min.js", "/ui/static/vendor/uplot/uPlot.iife.min.js",
                     "/ui/static/vendor/htmx/LICENSE", "/ui/static/vendor/uplot/LICENSE", "/ui/static/app.js",
                     "/ui/static/app.css"):
            r = client.get(path)
            assert r.status_code == 200, path
            assert r.headers["x-content-type-options"] == "nosniff"
        assert client.get("/ui/static/../../secret").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert not [p for p in paths if p.startswith("/ui") or p == "/"]
