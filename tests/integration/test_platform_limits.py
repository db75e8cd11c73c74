"""Client mistakes through a real ``pier up`` are 4xx on the gateway as on the replica, and never count as
server errors in the gateway's metrics (which the progressive canary and the dashboards judge); the
gateway's own checks of a request's head; its ``/metrics`` behind a scrape token."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.platform_support import V2_BODY, Platform, pier_down, replica_env, run_platform, save_models

pytestmark = pytest.mark.slow

SCRAPE = "scrape-0123456789"
HUGE = 4611686018427387904


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("platform-limits")
    save_models(home)
    env = {**replica_env(36000 + (os.getpid() % 50) * 200 % 20000), "PIER_GATEWAY__METRICS_TOKEN": SCRAPE,
           "PIER_LIMITS__MAX_REQUEST_ELEMENTS": "1000"}
    try:
        with run_platform(home, env) as p:
            p.apply("iris", [{"name": "main", "model": "iris:1", "replicas": 1}])
            p.wait_ready("iris", 1)
            yield p
    finally:
        pier_down(home, env)


def _metrics(platform: Platform) -> str:
    r = httpx.get(f"{platform.gateway}/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def test_huge_declared_shapes_are_4xx_through_the_gateway_and_not_5xx_in_its_metrics(platform: Platform) -> None:
    infer = f"{platform.gateway}/default/iris/v2/models/iris/infer"
    statuses = []
    for shape, datatype in (([0, HUGE, 4], "FP32"), ([100_000_000], "BYTES"), ([10**12], "BYTES")):
        doc = {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": []}]}
        statuses.append(httpx.post(infer, json=doc, timeout=30).status_code)
        header = json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype,
                                         "parameters": {"binary_data_size": 0}}]}).encode()
        statuses.append(httpx.post(infer, content=header, timeout=30,
                                   headers={"inference-header-content-length": str(len(header))}).status_code)
    assert all(400 <= s < 500 for s in statuses), statuses
    assert platform.infer("iris").status_code == 200  # the replica kept serving
    lines = [line for line in _metrics(platform).splitlines()
             if line.startswith("pier_gateway_requests_total") and 'deployment="iris"' in line]
    assert any('code="400"' in line or 'code="413"' in line for line in lines), lines
    assert not [line for line in lines if 'code="5' in line], lines


def test_the_gateway_refuses_ambiguous_heads(platform: Platform) -> None:
    infer = f"{platform.gateway}/default/iris/v2/models/iris/infer"
    both = [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
    two = httpx.get(infer.removesuffix("/infer"), headers=both)
    assert two.status_code == 400
    assert "2 Authorization headers" in two.json()["error"]["message"]
    host, port = platform.gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /default/iris/v2/models/iris/infer HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n"
                     b"transfer-encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]


def test_metrics_need_the_scrape_token_when_one_is_set(platform: Platform) -> None:
    assert httpx.get(f"{platform.gateway}/metrics", timeout=10).status_code == 401
    assert "pier_gateway_requests_total" in _metrics(platform)
    assert httpx.get(f"{platform.gateway}/healthz", timeout=10).status_code == 200


def test_replicas_started_by_pier_up_inherit_the_request_limits(platform: Platform) -> None:
    infer = f"{platform.gateway}/default/iris/v2/models/iris/infer"
    rows = [[5.1, 3.5, 1.4, 0.2]] * 250
    ok = httpx.post(infer, json={"inputs": [{"name": "input-0", "shape": [250, 4], "datatype": "FP32", "data": rows}]},
                    timeout=30)
    assert ok.status_code == 200, ok.text
    over = httpx.post(infer, json={"inputs": [{"name": "input-0", "shape": [251, 4], "datatype": "FP32",
                                               "data": [*rows, rows[0]]}]}, timeout=30)
    assert over.status_code == 413
    assert "limit of 1000 elements" in over.text


def test_a_body_the_deployment_allows_is_not_refused_by_its_replica(platform: Platform) -> None:
    # 20 MiB: over the model server's own default (serve.max_body_bytes, 16 MiB), under the deployment's
    # limits.maxBodyBytes (64 MiB by default), so the replica must have been started with the deployment's.
    body = json.dumps(V2_BODY).encode() + b" " * (20 * 2**20)
    r = httpx.post(f"{platform.gateway}/default/iris/v2/models/iris/infer", content=body, timeout=60,
                   headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]
