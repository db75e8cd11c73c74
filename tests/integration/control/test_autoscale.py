"""The local autoscaler through a real `pier up`: gateway traffic reports in, real replica processes
started and stopped, events and status out. Reports are synthetic gateway snapshots (the control
plane's real interface); every wait polls a condition."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.control.traffic_feed import Feeder, Load
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home: Path = tmp_path_factory.mktemp("autoscale")
    save_models(home)
    env = replica_env(33000 + (os.getpid() % 50) * 200 % 20000)
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


def autoscaled(min_replicas: int, max_replicas: int, stabilization: float) -> list[dict[str, Any]]:
    return [{"name": "main", "model": "iris:1", "autoscaling": {
        "minReplicas": min_replicas, "maxReplicas": max_replicas, "targetInFlight": 2,
        "stabilizationSeconds": stabilization}}]


def predictor_status(platform: Platform, name: str) -> dict[str, Any]:
    return dict(platform.status(name)["predictors"][0])


def replicas_are(platform: Platform, name: str, ready: int, desired: int) -> bool:
    s = predictor_status(platform, name)
    return bool(s["readyReplicas"] == ready and s["desiredReplicas"] == desired)


def messages(platform: Platform, name: str, reason: str) -> list[str]:
    return [e["message"] for e in platform.events(name) if e["reason"] == reason]


def test_in_flight_load_scales_up_and_back_down_after_the_window(platform: Platform) -> None:
    platform.apply("auto", autoscaled(1, 3, stabilization=3))
    platform.wait_ready("auto", 1)
    with Feeder(platform.api, "default", "auto") as gateway:
        gateway.set("main", Load(requests=20, in_flight=6))
        wait_until(lambda: replicas_are(platform, "auto", 3, 3), timeout=90, what="3 ready replicas under load")
        assert "Scaled predictor main from 1 to 3: 6 in flight, target 2 per replica" in messages(
            platform, "auto", "ScaledUp")
        metrics = httpx.get(f"{platform.api}/api/v1/metrics", headers=ADMIN_HEADERS).text
        assert re.search(r'modelpier_autoscaler_desired_replicas\{deployment="auto",predictor="main",'
                         r'project="default"\} 3\.0', metrics), metrics
        # What the Grafana dashboard's replicas panel reads (issue 16): desired for every predictor, and the bound.
        for name, value in (("modelpier_deployment_desired_replicas", 3), ("modelpier_autoscaler_max_replicas", 3)):
            assert re.search(rf'{name}\{{deployment="auto",predictor="main",project="default"\}} {value}\.0',
                             metrics), metrics
        wait_until(lambda: len(platform.replica_pids("auto")) == 3, what="three real replica processes")
        gateway.set("main", Load(requests=2, in_flight=1))
        wait_until(lambda: replicas_are(platform, "auto", 1, 1), timeout=60, what="back to 1 replica")
    down = messages(platform, "auto", "ScaledDown")
    assert down
    assert down[0].startswith("Scaled predictor main from 3 to 1: 1 in flight, target 2 per replica, below that "
                              "for 3s")
    assert gateway.failures == []


def test_the_autoscaler_never_scales_past_quota_and_records_why(platform: Platform) -> None:
    platform.apply("capped", autoscaled(1, 4, stabilization=30))
    platform.wait_ready("capped", 1)
    quota = f"{platform.api}/api/v1/projects/default/quota"
    # Lowered after the deployment was admitted (apply counts maxReplicas): only the autoscaler can hit it now.
    used = sum(s["desiredReplicas"] for d in httpx.get(f"{platform.api}/api/v1/projects/default/deployments",
                                                       headers=ADMIN_HEADERS).json()
               for s in d["status"]["predictors"])
    assert httpx.put(quota, json={"replicas": used + 1}, headers=ADMIN_HEADERS).status_code == 200
    try:
        with Feeder(platform.api, "default", "capped") as gateway:
            gateway.set("main", Load(requests=20, in_flight=8))
            wait_until(lambda: bool(messages(platform, "capped", "ScaleLimitedByQuota")), timeout=30,
                       what="the quota refusal event")
            wait_until(lambda: replicas_are(platform, "capped", 2, 2), timeout=60, what="2 replicas, not 4")
            refusal = messages(platform, "capped", "ScaleLimitedByQuota")
            assert len(refusal) == 1
            assert "needs 4 replicas but the project quota allows 2" in refusal[0]
            assert f"replicas: limit {used + 1}" in refusal[0]
            assert predictor_status(platform, "capped")["desiredReplicas"] == 2
    finally:
        assert httpx.put(quota, json={"replicas": None}, headers=ADMIN_HEADERS).status_code == 200
        httpx.delete(platform.deployment("capped"), headers=ADMIN_HEADERS)


def test_scale_to_zero_and_wake_on_a_waiting_request(platform: Platform) -> None:
    platform.apply("sleepy", autoscaled(0, 2, stabilization=2))
    # It starts with one replica (warm for a first request), and without traffic goes to zero 2 s later.
    wait_until(lambda: bool(messages(platform, "sleepy", "ScaledDown")), timeout=60, what="scaled to zero")
    assert "Scaled predictor main from 1 to 0: no traffic for 2s" in messages(platform, "sleepy", "ScaledDown")[0]
    wait_until(lambda: replicas_are(platform, "sleepy", 0, 0), timeout=60, what="no replica when idle")
    wait_until(lambda: platform.replica_pids("sleepy") == {}, timeout=60, what="its process stopped")
    routing = httpx.get(f"{platform.api}/api/v1/routing", headers=ADMIN_HEADERS).json()
    route = next(d for d in routing["deployments"] if d["deployment"] == "sleepy")
    assert next(p for p in route["predictors"] if p["name"] == "main")["scalesToZero"] is True
    gateway = Feeder(platform.api, "default", "sleepy")
    gateway.set("main", Load(waiting=1))
    gateway.send()  # what the gateway sends at once when a request starts waiting
    wait_until(lambda: predictor_status(platform, "sleepy")["desiredReplicas"] == 1, timeout=5,
               what="a replica wanted at once")
    wait_until(lambda: replicas_are(platform, "sleepy", 1, 1), timeout=60, what="a replica started for the request")
    assert "Scaled predictor main from 0 to 1: 1 request(s) waiting for a cold start" in messages(
        platform, "sleepy", "ScaledUp")
    assert platform.infer("sleepy").status_code == 200
