"""The traffic API of a real `pier server`: gateways' reports in, window queries out, access rules.

Reports are synthetic gateway snapshots, sent as a gateway sends them (that is the control plane's
real interface; the gateway's own sender is tested on its side). No reconciler runs here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.procs import ADMIN_HEADERS, control_plane

from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.settings import load_settings

LE: list[Any] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, "+Inf"]


def latency(fast: int, slow: int = 0) -> dict[str, Any]:
    """``fast`` answers in (5, 10] ms and ``slow`` in (50, 100] ms, as cumulative buckets."""
    counts, running = [], 0
    for i in range(len(LE)):
        running += fast if i == 3 else slow if i == 6 else 0
        counts.append(running)
    return {"le": LE, "counts": counts, "sum": fast * 0.008 + slow * 0.08}


def predictor(name: str, requests: int, errors: int = 0, *, slow: int = 0, **gauges: Any) -> dict[str, Any]:
    return {"name": name, "requests": requests, "errors": errors, "rejected": 0, "retries": 0, "cacheHits": 0,
            "inFlight": gauges.get("inFlight", 0), "waiting": gauges.get("waiting", 0),
            "replicas": gauges.get("replicas", {}), "latency": latency(requests - slow, slow)}


def report(gateway: str, started: float, deployments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"gateway": gateway, "startedAt": started, "at": time.time(), "deployments": deployments}


@dataclass
class Api:
    url: str
    admin: httpx.Client
    viewer: dict[str, str]
    outsider: dict[str, str]


def _register(home: Path) -> None:
    registry = build_registry(load_settings(home=home))
    try:
        folder = home / "artifact"
        folder.mkdir(parents=True)
        (folder / "model.bin").write_bytes(b"weights")
        registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    finally:
        registry.close()


def _token(admin: httpx.Client, user: str, project: str, role: str) -> dict[str, str]:
    made = admin.post("/tokens", json={"name": user, "user": user})
    assert made.status_code == 201, made.text
    if project != "default":
        admin.post("/projects", json={"name": project})
    assert admin.put(f"/projects/{project}/members/{user}", json={"role": role}).status_code == 200
    return {"Authorization": f"Bearer {made.json()['token']}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("traffic")
    _register(home)
    with control_plane(home) as url, httpx.Client(base_url=f"{url}/api/v1", headers=ADMIN_HEADERS,
                                                  timeout=30) as admin:
        document = {"metadata": {"name": "iris"}, "spec": {"predictors": [
            {"name": "main", "model": "iris:1", "weight": 100}, {"name": "shadow", "model": "iris:1", "weight": 0}],
            "shadow": {"predictor": "shadow"}}}
        assert admin.put("/projects/default/deployments/iris", json=document).status_code == 201
        yield Api(url, admin, _token(admin, "vic", "default", "viewer"), _token(admin, "olga", "other", "owner"))


TRAFFIC = "/projects/default/deployments/iris/traffic"


def test_a_report_is_answered_with_204_and_read_back_as_rates(api: Api) -> None:
    started = time.time()
    shadow = {"predictor": "shadow", "mirrored": 100, "failed": 2, "compared": 98, "agreed": 49, "numeric": 48,
              "absErrorSum": 2.4}
    body = report("gw-rates", started, [{"project": "default", "deployment": "iris", "shadow": shadow,
                                         "predictors": [predictor("main", 120, 6, slow=2, inFlight=3,
                                                                  replicas={"main-1": 3})]}])
    r = api.admin.post("/traffic", json=body)
    assert r.status_code == 204, r.text
    assert r.content == b""
    w = api.admin.get(TRAFFIC, params={"window": 60, "step": 5}).json()
    assert (w["window"], w["step"]) == (60, 5)
    main = next(p for p in w["predictors"] if p["name"] == "main")
    assert main["requests"] == 120
    assert main["requestRate"] == pytest.approx(2.0)
    assert main["errorRate"] == pytest.approx(0.05)
    assert 5 < main["p50Ms"] <= 10
    assert 5 < main["p99Ms"] <= 100
    assert main["inFlight"] == 3
    assert [p["name"] for p in w["predictors"]] == ["main", "shadow"]  # the spec's predictors, in order
    assert w["shadow"] == {"predictor": "shadow", "mirrored": 100, "failed": 2, "compared": 98,
                           "agreementRate": pytest.approx(49 / 50), "meanAbsError": pytest.approx(0.05)}
    assert len(w["series"]) == 12
    assert w["series"][0]["t"] < w["series"][-1]["t"]
    assert w["series"][-1]["predictors"]["main"]["inFlight"] == 3


def test_a_viewer_reads_the_window_but_cannot_report(api: Api) -> None:
    assert httpx.get(api.url + "/api/v1" + TRAFFIC, headers=api.viewer).status_code == 200
    r = httpx.post(api.url + "/api/v1/traffic", headers=api.viewer, json=report("gw-v", time.time(), []))
    assert r.status_code == 403


def test_no_token_is_401_and_another_project_is_404(api: Api) -> None:
    assert httpx.post(api.url + "/api/v1/traffic", json=report("gw-x", time.time(), [])).status_code == 401
    assert httpx.get(api.url + "/api/v1" + TRAFFIC).status_code == 401
    assert httpx.get(api.url + "/api/v1" + TRAFFIC, headers=api.outsider).status_code == 404


def test_an_unknown_deployment_is_404(api: Api) -> None:
    r = api.admin.get("/projects/default/deployments/nope/traffic")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("params", "field"), [({"window": 0}, "window"), ({"window": 901}, "window"),
                                               ({"window": "soon"}, "window"), ({"window": 10, "step": 11}, "step"),
                                               ({"window": 900, "step": 0.5}, "step")])
def test_a_bad_window_is_422_naming_it(api: Api, params: dict[str, Any], field: str) -> None:
    r = api.admin.get(TRAFFIC, params=params)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("gateway"), "gateway"),
    (lambda b: b["deployments"][0]["predictors"][0].update(requests=-1), "deployments.0.predictors.0.requests"),
    (lambda b: b["deployments"][0]["predictors"][0]["latency"]["counts"].pop(), "deployments.0.predictors.0.latency"),
    (lambda b: b["deployments"][0]["predictors"][0]["latency"].update(le=[1, 0.5, "+Inf"], counts=[0, 0, 0]),
     "deployments.0.predictors.0.latency"),
    (lambda b: b.update(at="yesterday"), "at"),
])
def test_a_bad_report_is_422_naming_the_field(api: Api, mutate: Any, field: str) -> None:
    body = report("gw-bad", time.time(), [{"project": "default", "deployment": "iris",
                                           "predictors": [predictor("main", 1)]}])
    mutate(body)
    r = api.admin.post("/traffic", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_reports_are_not_audited_and_metrics_need_the_admin(api: Api) -> None:
    api.admin.post("/traffic", json=report("gw-audit", time.time(), []))
    audit = api.admin.get("/audit", params={"limit": 1000}).json()
    assert all(e["path"] != "/api/v1/traffic" for e in audit)
    metrics = api.admin.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "modelpier_traffic_reports_total" in metrics.text
    assert "modelpier_shadow_agreement_ratio" in metrics.text
    assert httpx.get(api.url + "/api/v1/metrics", headers=api.viewer).status_code == 403


@pytest.mark.parametrize(("body", "field"), [({"to": "iris:1", "steps": [50, 10]}, "steps"),
                                             ({"to": "iris:1", "steps": [100]}, "steps"),
                                             ({"to": "iris:1", "intervalSeconds": 0}, "intervalSeconds"),
                                             ({"to": "Not A Ref!"}, "to"),
                                             ({"to": "iris:1", "predictor": "Bad_Name"}, "predictor")])
def test_a_bad_canary_request_is_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    r = api.admin.post("/projects/default/deployments/iris/canary", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_no_canary_yet_is_404(api: Api) -> None:
    r = api.admin.get("/projects/default/deployments/iris/canary")
    assert r.status_code == 404
    assert "no canary" in r.json()["error"]["message"]
    assert api.admin.get("/projects/default/deployments/nope/canary").status_code == 404
