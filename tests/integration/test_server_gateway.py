"""``pier server`` on its own is the whole control plane: a separately started ``pier gateway`` serves
from its routing table (issue 15). Both are real processes on free loopback ports; replicas are the
local backend's child processes, stopped by ``pier down`` (the server recorded itself for it)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.platform_support import V2_BODY, pier_down, replica_env
from tests.support.procs import ADMIN_HEADERS, BIN, control_plane, free_port, pier_env, wait_until
from tests.support.watchdog import watch

pytestmark = pytest.mark.slow


def _save_iris(home: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.settings import load_settings

    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    modelpier.save_model("iris", LogisticRegression(max_iter=300).fit(x, y), input_example=x[:2],
                         settings=load_settings(home=home))


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    low = 34000 + (os.getpid() % 50) * 200 % 20000
    return {**replica_env(low), "PIER_GATEWAY__PORT": str(free_port())}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("server-gateway")
    _save_iris(home)
    return home


@pytest.fixture(scope="module")
def server(home: Path, env: dict[str, str]) -> Iterator[str]:
    try:
        with control_plane(home, backend="local", **env) as url:
            yield url
        assert not (home / "platform.json").exists(), "pier server left its record behind"
    finally:
        pier_down(home, env)  # the replicas outlive the server by design


@pytest.fixture(scope="module")
def gateway(server: str, home: Path, env: dict[str, str]) -> Iterator[str]:
    port = env["PIER_GATEWAY__PORT"]
    log = (home / "gateway.log").open("w")
    proc = subprocess.Popen([str(BIN / "pier"), "gateway", "--control", server, "--host", "127.0.0.1",
                             "--port", port, "--grpc-port", "0"], env=pier_env(home, **env), stdout=log,
                            stderr=subprocess.STDOUT)
    guard = watch(proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or _ok(f"{url}/healthz"), what=f"pier gateway on {url}")
        assert proc.poll() is None, (home / "gateway.log").read_text()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
        log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_gateway_in_front_of_pier_server_serves_what_it_deploys(server: str, gateway: str) -> None:
    document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"},
                "spec": {"predictors": [{"name": "main", "model": "iris:1", "replicas": 1}]}}
    deployment = f"{server}/api/v1/projects/default/deployments/iris"
    assert httpx.put(deployment, json=document, headers=ADMIN_HEADERS, timeout=30).status_code == 201

    def ready() -> bool:
        status = httpx.get(f"{deployment}/status", headers=ADMIN_HEADERS, timeout=10).json()
        return bool(status.get("readyReplicas") == 1)

    wait_until(ready, timeout=90, what="iris ready under pier server")
    status = httpx.get(f"{deployment}/status", headers=ADMIN_HEADERS, timeout=10).json()
    assert status["url"] == f"{gateway}/default/iris"  # the gateway of the server's settings
    table = httpx.get(f"{server}/api/v1/routing", headers=ADMIN_HEADERS, timeout=10)
    assert table.status_code == 200
    assert "iris" in table.text
    endpoint = f"{gateway}/default/iris/v2/models/iris/infer"
    wait_until(lambda: httpx.post(endpoint, json=V2_BODY, timeout=10).status_code == 200, timeout=30,
               what="a prediction through the gateway")
    answer = httpx.post(endpoint, json=V2_BODY, timeout=10)
    assert answer.headers["x-pier-predictor"] == "main"
    assert answer.json()["outputs"][0]["data"] in ([0], [1], [2])
