"""The deployments and projects API over HTTP: a real `pier server` process, driven with httpx.

Models are registered in the server's store beforehand (iris 1 and 2, alias production → 1); no
reconciler is needed, since these tests look at desired state: revisions, events, rollbacks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.support.procs import ADMIN_HEADERS, control_plane, wait_until

from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings

BASE = "/projects/default/deployments"


def register_models(home: Path) -> None:
    registry = build_registry(load_settings(home=home))
    try:
        for version in (1, 2):
            folder = home / f"artifact-{version}"
            folder.mkdir(parents=True)
            (folder / "model.bin").write_bytes(f"weights {version}".encode())
            registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
        registry.set_alias("iris", "production", 1)
    finally:
        registry.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("deploy-home")
    register_models(home)
    return home


@pytest.fixture(scope="module")
def api(home: Path) -> Iterator[httpx.Client]:
    with control_plane(home, PIER_CONTROL__ALIAS_POLL_SECONDS="0.2") as url, \
            httpx.Client(base_url=f"{url}/api/v1", timeout=30, headers=ADMIN_HEADERS) as client:
        yield client


def document(name: str, model: str = "iris:production", **predictor: Any) -> dict[str, Any]:
    return {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"predictors": [{"name": "main", "model": model, **predictor}]}}


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert "Traceback" not in r.text
    return dict(body["error"])


def test_put_json_then_yaml_is_idempotent_and_makes_revisions(api: httpx.Client) -> None:
    r = api.put(f"{BASE}/web", json=document("web"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["created"], body["revision"]["number"], body["revision"]["resolved"]) == (True, 1, {"main": "iris:1"})
    assert body["revision"]["createdBy"] == "admin"
    assert body["deployment"]["metadata"]["project"] == "default"

    again = api.put(f"{BASE}/web", json=document("web"))
    assert (again.status_code, again.json()["created"], again.json()["revision"]["number"]) == (200, False, 1)

    text = yaml.safe_dump(document("web", replicas=2))
    for media in ("application/yaml", "text/yaml"):
        r = api.put(f"{BASE}/web", content=text, headers={"Content-Type": media})
        assert r.status_code in (200, 201), r.text
        assert r.json()["revision"]["number"] == 2

    got = api.get(f"{BASE}/web").json()
    assert got["spec"]["predictors"][0]["replicas"] == 2
    assert got["metadata"]["revision"] == 2
    assert got["resolved"] == {"main": "iris:1"}
    assert "conditions" in got["status"]
    assert [d["metadata"]["name"] for d in api.get(BASE).json()] == ["web"]
    assert api.get(f"{BASE}/web/status").json()["desiredRevision"] == 2
    reasons = [e["reason"] for e in api.get(f"{BASE}/web/events").json()]
    assert reasons == ["RevisionCreated", "RevisionCreated"]


def test_a_body_without_metadata_takes_the_url_name(api: httpx.Client) -> None:
    r = api.put(f"{BASE}/bare", json={"spec": {"predictors": [{"model": "iris:2"}]}})
    assert r.status_code == 201, r.text
    assert r.json()["revision"]["resolved"] == {"main": "iris:2"}


@pytest.mark.parametrize(("model", "fragment"), [
    ("ghost:1", "model 'ghost' does not exist"),
    ("iris:99", "99"),
    ("iris:canary", "canary"),
])
def test_unknown_model_references_create_nothing(api: httpx.Client, model: str, fragment: str) -> None:
    r = api.put(f"{BASE}/broken", json=document("broken", model=model))
    assert r.status_code == 404, r.text
    err = error_of(r)
    assert "spec.predictors.0.model" in err["message"]
    assert fragment in err["message"]
    assert err["details"]["predictor"] == "main"
    assert api.get(f"{BASE}/broken").status_code == 404


@pytest.mark.parametrize(("body", "headers", "status", "fragments"), [
    (document("other"), {}, 422, ["metadata.name 'other'", "'mismatch'"]),
    ({**document("mismatch"), "metadata": {"name": "mismatch", "project": "acme"}}, {}, 422,
     ["metadata.project 'acme'", "'default'"]),
    (document("mismatch", weight=50), {}, 422, ["spec: predictors[*].weight must add up to 100"]),
    (document("mismatch", replica=2), {}, 422, ["spec.predictors.0.replica"]),
    (document("mismatch", model="Iris"), {}, 422, ["spec.predictors.0.model"]),
    ("spec: [unclosed", {"Content-Type": "application/yaml"}, 422, ["not valid YAML"]),
    ("{not json", {"Content-Type": "application/json"}, 422, ["not valid JSON"]),
    ("- a list", {"Content-Type": "application/yaml"}, 422, ["must be a mapping"]),
    ("", {"Content-Type": "application/json"}, 422, ["empty"]),
    ("name: x", {"Content-Type": "text/plain"}, 400, ["text/plain"]),
])
def test_bad_documents_are_refused_naming_the_problem(api: httpx.Client, body: Any, headers: dict[str, str],
                                                      status: int, fragments: list[str]) -> None:
    if isinstance(body, dict):
        r = api.put(f"{BASE}/mismatch", json=body)
    else:
        r = api.put(f"{BASE}/mismatch", content=body, headers=headers)
    assert r.status_code == status, r.text
    message = error_of(r)["message"]
    for fragment in fragments:
        assert fragment in message
    assert api.get(f"{BASE}/mismatch").status_code == 404


def test_revisions_and_rollback(api: httpx.Client) -> None:
    api.put(f"{BASE}/rb", json=document("rb", replicas=1)).raise_for_status()
    api.put(f"{BASE}/rb", json=document("rb", replicas=3)).raise_for_status()
    revisions = api.get(f"{BASE}/rb/revisions").json()
    assert [(r["number"], r["spec"]["predictors"][0]["replicas"]) for r in revisions] == [(1, 1), (2, 3)]
    assert [api.get(f"{BASE}/rb/revisions/1").json()[k] for k in ("kind", "cause")] == ["applied", "applied"]
    assert error_of(api.get(f"{BASE}/rb/revisions/7"))["code"] == "not_found"

    r = api.post(f"{BASE}/rb/rollback")
    assert r.status_code == 201, r.text
    assert (r.json()["revision"]["number"], r.json()["revision"]["cause"]) == (3, "rollback to revision 1")
    assert r.json()["revision"]["kind"] == "rollback"
    assert api.get(f"{BASE}/rb").json()["spec"]["predictors"][0]["replicas"] == 1

    r = api.post(f"{BASE}/rb/rollback", json={"revision": 2})
    assert (r.status_code, r.json()["revision"]["number"]) == (201, 4)
    assert api.get(f"{BASE}/rb").json()["spec"]["predictors"][0]["replicas"] == 3
    assert api.post(f"{BASE}/rb/rollback", json={"revision": 4}).status_code == 200  # already runs it
    assert error_of(api.post(f"{BASE}/rb/rollback", json={"revision": 9}))["code"] == "not_found"
    assert "RollbackRequested" in [e["reason"] for e in api.get(f"{BASE}/rb/events").json()]


def test_delete_marks_the_deployment_deleting(api: httpx.Client) -> None:
    api.put(f"{BASE}/gone", json=document("gone")).raise_for_status()
    r = api.delete(f"{BASE}/gone")
    assert r.status_code == 202, r.text
    assert r.json()["metadata"]["deleting"] is True
    assert api.get(f"{BASE}/gone").json()["metadata"]["deleting"] is True
    assert error_of(api.put(f"{BASE}/gone", json=document("gone", replicas=2)))["code"] == "conflict"
    assert api.delete(f"{BASE}/missing").status_code == 404


def test_projects(api: httpx.Client) -> None:
    assert error_of(api.get("/projects/acme/deployments"))["message"].startswith("project 'acme' does not exist")
    r = api.put("/projects/acme/deployments/web", json=document("web"))
    assert r.status_code == 404
    assert "project 'acme'" in error_of(r)["message"]
    assert api.post("/projects", json={"name": "acme"}).status_code == 201
    assert error_of(api.post("/projects", json={"name": "acme"}))["code"] == "already_exists"
    assert error_of(api.post("/projects", json={"name": "Not Valid"}))["code"] == "invalid_name"
    assert "acme" in [p["name"] for p in api.get("/projects").json()]
    assert api.put("/projects/acme/deployments/web", json=document("web")).status_code == 201
    assert [d["metadata"]["project"] for d in api.get("/deployments").json()].count("acme") == 1
    assert error_of(api.delete("/projects/acme"))["code"] == "conflict"
    assert error_of(api.delete("/projects/default"))["code"] == "conflict"
    assert api.delete("/projects/nope").status_code == 404


def test_logs_without_a_backend_say_so(api: httpx.Client) -> None:
    api.put(f"{BASE}/quiet", json=document("quiet")).raise_for_status()
    r = api.get(f"{BASE}/quiet/logs", params={"tail": 5})
    assert r.status_code == 404
    assert "logs are not available" in error_of(r)["message"]


def test_following_an_alias_rolls_out_and_prefetches(api: httpx.Client, home: Path) -> None:
    api.put(f"{BASE}/follow", json=document("follow", followAlias=True)).raise_for_status()
    api.put(f"{BASE}/pinned", json=document("pinned")).raise_for_status()
    api.put("/models/iris/aliases/production", json={"version": 2}).raise_for_status()
    try:
        wait_until(lambda: len(api.get(f"{BASE}/follow/revisions").json()) == 2, timeout=20,
                   what="a revision made by the alias move")
        latest = api.get(f"{BASE}/follow/revisions").json()[-1]
        assert (latest["cause"], latest["resolved"], latest["createdBy"]) == \
            ("alias iris:production moved from 1 to 2", {"main": "iris:2"}, "modelpier")
        assert any(p.name.startswith("2-") for p in (home / "cache" / "iris").iterdir())  # blob fetched first
        assert "AliasMoved" in [e["reason"] for e in api.get(f"{BASE}/follow/events").json()]
        assert len(api.get(f"{BASE}/pinned/revisions").json()) == 1  # not following: untouched

        # Rolling back holds the old version even though the alias still points at 2.
        api.post(f"{BASE}/follow/rollback").raise_for_status()
        time.sleep(1.0)  # several polls (every 0.2 s): none may undo the rollback
        assert [r["resolved"]["main"] for r in api.get(f"{BASE}/follow/revisions").json()] == \
            ["iris:1", "iris:2", "iris:1"]
    finally:
        api.put("/models/iris/aliases/production", json={"version": 1}).raise_for_status()
