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

from tests.integration.platform_support import Load, Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS, run_pier, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("platform")
    save_models(home)
    return home


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return replica_env(32000 + (os.getpid() % 50) * 200 % 20000)


@pytest.fixture(scope="module")
def platform(home: Path, env: dict[str, str]) -> Iterator[Platform]:
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        # The gateway and replicas outlive `pier up` by design: `pier down` stops them (by recorded pid).
        pier_down(home, env)


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
    assert httpx.delete(platform.deployment("one"), headers=ADMIN_HEADERS).status_code == 202
    wait_until(lambda: httpx.get(platform.deployment("one"), headers=ADMIN_HEADERS).status_code == 404,
               what="the deployment purged")
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
    httpx.delete(platform.deployment("heal"), headers=ADMIN_HEADERS)


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
    httpx.delete(platform.deployment("roll"), headers=ADMIN_HEADERS)


def test_moving_a_followed_alias_rolls_out_the_new_version(platform: Platform) -> None:
    aliases = f"{platform.api}/api/v1/models/iris/aliases/production"
    assert httpx.put(aliases, json={"version": 1}, timeout=10, headers=ADMIN_HEADERS).status_code == 200
    platform.apply("follow", [{"name": "main", "model": "iris:production", "followAlias": True, "replicas": 1}])
    platform.wait_ready("follow", 1, revision=1)
    assert platform.infer("follow").json()["model_version"] == "1"
    assert httpx.put(aliases, json={"version": 2}, timeout=10, headers=ADMIN_HEADERS).status_code == 200
    platform.wait_ready("follow", 1, revision=2, timeout=60)  # nobody re-applied: the alias move did it
    assert {platform.infer("follow").json()["model_version"] for _ in range(10)} == {"2"}
    revisions = httpx.get(platform.deployment("follow") + "/revisions", timeout=10, headers=ADMIN_HEADERS).json()
    assert "alias iris:production moved from 1 to 2" in revisions[-1]["cause"]
    assert "AliasMoved" in [e["reason"] for e in platform.events("follow")]
    httpx.delete(platform.deployment("follow"), headers=ADMIN_HEADERS)


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
    httpx.delete(platform.deployment("guard"), headers=ADMIN_HEADERS)


def test_deploy_wait_exits_8_when_the_rollout_is_rolled_back(platform: Platform, home: Path) -> None:
    platform.apply("waited", iris(1, 1))
    platform.wait_ready("waited", 1)
    document = home / "waited.yaml"
    document.write_text(
        "apiVersion: modelpier.io/v1alpha1\nkind: ModelDeployment\nmetadata: {name: waited}\n"
        "spec:\n  rollout: {readyTimeoutSeconds: 60}\n  predictors: [{name: main, model: 'broken:1', replicas: 1}]\n")
    result = run_pier(["deploy", "-f", str(document), "--wait", "--timeout", "90", "--remote", platform.api], home,
                      timeout=120, **platform.env)
    # Revision 2 failed and was rolled back as revision 3, which is ready: the deploy failed all the same.
    assert result.returncode == 8, result.stdout + result.stderr
    assert "revision 2 failed" in result.stderr
    assert "RolledBack" in result.stderr
    assert "is ready" not in result.stdout
    assert platform.status("waited")["desiredRevision"] == 3
    httpx.delete(platform.deployment("waited"), headers=ADMIN_HEADERS)


def test_restarting_the_control_plane_fails_no_request_through_the_gateway(platform: Platform, home: Path) -> None:
    platform.apply("keep", iris(1, 1))
    platform.wait_ready("keep", 1)
    pids = platform.replica_pids("keep")
    gateway_pid = platform.gateway_pid()
    started = [e for e in platform.events("keep") if e["reason"] == "ReplicaStarted"]
    api_port, gw_port = (int(url.rsplit(":", 1)[1]) for url in (platform.api, platform.gateway))
    with contextlib.ExitStack() as restarted:
        with Load(platform, "keep", limit=100_000) as load:
            platform.proc.send_signal(signal.SIGKILL)  # a crash: nothing gets to clean up
            platform.proc.wait(timeout=30)
            down_since = load.count
            wait_until(lambda: load.count >= down_since + 200, timeout=30, what="answers without a control plane")
            # The replicas and the gateway outlive the control plane; a new one adopts both.
            platform.proc = restarted.enter_context(
                run_platform(home, platform.env, api_port=api_port, gw_port=gw_port)).proc
            wait_until(lambda: httpx.get(f"{platform.gateway}/healthz").json()["routing"]["error"] is None,
                       timeout=10, what="the gateway polling the new control plane")
            up_since = load.count
            wait_until(lambda: load.count >= up_since + 200, timeout=30, what="answers after the restart")
        assert load.failures == []
        assert platform.gateway_pid() == gateway_pid
        assert platform.replica_pids("keep") == pids
        platform.wait_ready("keep", 1)
        assert [e for e in platform.events("keep") if e["reason"] == "ReplicaStarted"] == started
        httpx.delete(platform.deployment("keep"), headers=ADMIN_HEADERS)
        wait_until(lambda: platform.infer("keep").status_code == 404, what="the gateway sees the deletion")


def test_pier_down_stops_the_control_plane_gateway_and_replicas(home: Path, env: dict[str, str]) -> None:
    # Runs last: it stops the module's platform for good (the fixture's own `pier down` then finds nothing).
    with run_platform(home, env) as again:
        again.apply("bye", iris(1, 2))
        again.wait_ready("bye", 2)
        pids = [again.proc.pid, again.gateway_pid(), *again.replica_pids().values()]
        result = run_pier(["down", "--grace-s", "10"], home, timeout=120, **env)
        assert result.returncode == 0, result.stderr
        assert "stopped the control plane" in result.stdout
        assert "stopped the gateway" in result.stdout
        assert again.proc.wait(timeout=10) == 0
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in pids), timeout=15,
               what="every platform process gone")
    assert not (home / "gateway.json").exists()
    assert again.replica_pids() == {}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
