"""Acceptance tests of issue 4 against a real ``pier up``: deploy, self-heal, roll out, roll back,
restart the control plane. Real replica processes on loopback; every wait polls a condition."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.platform_support import Load, Platform, replica_env, run_platform, save_models
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("platform")
    save_models(home)
    yield home
    # Replicas outlive `pier up` by design: stop the ones the tests left, by the pids we recorded.
    state = home / "replicas" / "state.json"
    if state.exists():
        import json

        for replica in json.loads(state.read_text())["replicas"]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica["pid"], signal.SIGKILL)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return replica_env(32000 + (os.getpid() % 50) * 200 % 20000)


@pytest.fixture(scope="module")
def platform(home: Path, env: dict[str, str]) -> Iterator[Platform]:
    with run_platform(home, env) as p:
        yield p


def iris(version: int, replicas: int) -> list[dict[str, object]]:
    return [{"name": "main", "model": f"iris:{version}", "replicas": replicas}]


def test_deploy_predict_then_delete(platform: Platform) -> None:
    platform.apply("one", iris(1, 1))
    platform.wait_ready("one", 1)
    response = platform.infer("one")
    assert response.status_code == 200
    assert response.headers["x-pier-predictor"] == "main"
    assert response.headers["x-pier-revision"] == "1"
    assert response.headers["x-request-id"]
    assert response.json()["model_version"] == "1"
    status = platform.status("one")
    assert status["url"] == f"{platform.gateway}/default/one"
    assert status["predictors"][0]["modelVersion"] == "iris:1"
    assert {"ReplicaStarted", "ReplicaReady", "RolloutComplete"} <= {e["reason"] for e in platform.events("one")}
    assert httpx.get(f"{platform.gateway}/default/nope/v2/health/ready").status_code == 404
    assert httpx.delete(platform.deployment("one")).status_code == 202
    wait_until(lambda: httpx.get(platform.deployment("one")).status_code == 404, what="the deployment purged")
    gone = platform.infer("one")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


def test_kill_one_of_two_replicas_under_load_fails_no_request(platform: Platform) -> None:
    platform.apply("heal", iris(1, 2))
    platform.wait_ready("heal", 2)
    before = platform.replica_pids("heal")
    victim_id = sorted(before)[0]
    with Load(platform, "heal", limit=300) as load:
        os.kill(before[victim_id], signal.SIGKILL)
        wait_until(lambda: load.count >= 300, timeout=60, what="300 requests")
    assert load.failures == []
    wait_until(lambda: platform.replica_pids("heal").get(victim_id) not in (None, before[victim_id]), timeout=15,
               what="the replica restarted")
    platform.wait_ready("heal", 2, timeout=30)
    assert "ReplicaCrashed" in {e["reason"] for e in platform.events("heal")}
    httpx.delete(platform.deployment("heal"))


def test_rolling_update_under_load_fails_no_request(platform: Platform) -> None:
    platform.apply("roll", iris(1, 2))
    platform.wait_ready("roll", 2)
    with Load(platform, "roll") as load:
        platform.apply("roll", iris(2, 2))
        platform.wait_ready("roll", 2, revision=2, timeout=60)
    assert load.failures == []
    assert set(load.versions) <= {"1", "2"}
    assert load.versions["2"] > 0
    after = [platform.infer("roll").json()["model_version"] for _ in range(20)]
    assert set(after) == {"2"}
    httpx.delete(platform.deployment("roll"))


def test_broken_revision_is_rolled_back_and_v1_keeps_serving(platform: Platform) -> None:
    platform.apply("guard", iris(1, 1))
    platform.wait_ready("guard", 1)
    with Load(platform, "guard") as load:
        platform.apply("guard", [{"name": "main", "model": "broken:1", "replicas": 1}],
                       rollout={"readyTimeoutSeconds": 60})
        wait_until(lambda: platform.condition("guard", "Progressing")["reason"] == "RolledBack", timeout=60,
                   what="the automatic rollback")
    assert load.failures == []
    assert set(load.versions) == {"1"}
    progressing = platform.condition("guard", "Progressing")
    assert "revision 2 never became ready" in progressing["message"]
    assert "weights are corrupt" in progressing["message"]
    assert "RolledBack" in {e["reason"] for e in platform.events("guard")}
    status = platform.status("guard")
    assert status["desiredRevision"] == 3
    assert platform.infer("guard").json()["model_version"] == "1"
    httpx.delete(platform.deployment("guard"))


def test_restarting_the_control_plane_adopts_live_replicas(platform: Platform, home: Path) -> None:
    platform.apply("keep", iris(1, 1))
    platform.wait_ready("keep", 1)
    pids = platform.replica_pids("keep")
    started = [e for e in platform.events("keep") if e["reason"] == "ReplicaStarted"]
    platform.proc.send_signal(signal.SIGTERM)
    assert platform.proc.wait(timeout=30) == 0
    # The replicas outlive the control plane, still answering.
    assert all(os.path.exists(f"/proc/{pid}") for pid in pids.values())
    with run_platform(home, platform.env) as again:
        platform.proc, platform.api, platform.gateway = again.proc, again.api, again.gateway
        wait_until(lambda: platform.infer("keep").status_code == 200, timeout=15, what="the endpoint back")
        assert platform.replica_pids("keep") == pids
        platform.wait_ready("keep", 1)
        assert [e for e in platform.events("keep") if e["reason"] == "ReplicaStarted"] == started
        httpx.delete(platform.deployment("keep"))
        wait_until(lambda: httpx.get(platform.deployment("keep")).status_code == 404, what="purged")
