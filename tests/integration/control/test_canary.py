"""Progressive canary through a real `pier up`: the control plane drives the steps on real replicas,
judging synthetic gateway traffic reports (the control plane's real interface). Promote on healthy
stats, roll back (naming the metric) on a worse canary, abort on request; the CLI follows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.control.traffic_feed import Feeder, Load
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS, run_pier, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # progressive canaries step on a timer

CANARY_SPEC = {"canary": {"minRequests": 5, "maxErrorRateIncrease": 0.05, "maxLatencyRatio": 2}}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home: Path = tmp_path_factory.mktemp("canary")
    save_models(home)
    env = replica_env(36000 + (os.getpid() % 50) * 200 % 20000)
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


def deploy(platform: Platform, name: str) -> None:
    platform.apply(name, [{"name": "main", "model": "iris:1", "replicas": 1}], **CANARY_SPEC)
    platform.wait_ready(name, 1)


def canary(platform: Platform, name: str) -> dict[str, Any]:
    r = httpx.get(platform.deployment(name) + "/canary", headers=ADMIN_HEADERS, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def done(platform: Platform, name: str) -> bool:
    return bool(canary(platform, name)["done"])


def deployed(platform: Platform, name: str) -> dict[str, Any]:
    return dict(httpx.get(platform.deployment(name), headers=ADMIN_HEADERS, timeout=10).json())


def reasons(platform: Platform, name: str) -> list[str]:
    return [e["reason"] for e in platform.events(name)]


def kinds(platform: Platform, name: str) -> list[str]:
    revisions = httpx.get(platform.deployment(name) + "/revisions", headers=ADMIN_HEADERS, timeout=10).json()
    return [r["kind"] for r in revisions]


def test_a_healthy_canary_is_promoted_step_by_step(platform: Platform) -> None:
    deploy(platform, "good")
    with Feeder(platform.api, "default", "good") as gateway:
        gateway.set("main", Load(requests=10, latency_s=0.008))
        gateway.set("canary", Load(requests=10, latency_s=0.009))
        started = httpx.post(platform.deployment("good") + "/canary", headers=ADMIN_HEADERS, timeout=30,
                             json={"to": "iris:2", "steps": [25, 50, 100], "intervalSeconds": 2})
        assert started.status_code == 201, started.text
        body = started.json()
        assert (body["phase"], body["weight"], body["version"], body["stableVersion"]) == \
            ("progressing", 25, "iris:2", "iris:1")
        first = deployed(platform, "good")
        assert [(p["name"], p["model"], p["weight"]) for p in first["spec"]["predictors"]] == \
            [("main", "iris:1", 75), ("canary", "iris:2", 25)]
        again = httpx.post(platform.deployment("good") + "/canary", headers=ADMIN_HEADERS, timeout=30,
                           json={"to": "iris:2"})
        assert again.status_code == 409  # one canary at a time
        wait_until(lambda: done(platform, "good"), timeout=180, what="the canary to finish")
    result = canary(platform, "good")
    assert result["phase"] == "promoted", result
    assert [r["verdict"] for r in result["results"] if r["verdict"] != "hold"] == ["promote-step", "promote-step"]
    final = deployed(platform, "good")
    assert [(p["name"], p["model"], p["weight"]) for p in final["spec"]["predictors"]] == [("main", "iris:2", 100)]
    assert final["resolved"] == {"main": "iris:2"}
    assert kinds(platform, "good") == ["applied", "canary-step", "canary-step", "canary-promote"]
    assert {"CanaryStarted", "CanaryStep", "CanaryStepPassed", "CanaryPromoted"} <= set(reasons(platform, "good"))
    wait_until(lambda: platform.infer("good").json().get("model_version") == "2", timeout=30,
               what="the gateway answering with the promoted version")
    assert gateway.failures == []


def test_a_canary_with_more_errors_is_rolled_back_naming_the_metric(platform: Platform) -> None:
    deploy(platform, "bad")
    with Feeder(platform.api, "default", "bad") as gateway:
        gateway.set("main", Load(requests=10, errors=0))
        gateway.set("canary", Load(requests=10, errors=3))
        r = httpx.post(platform.deployment("bad") + "/canary", headers=ADMIN_HEADERS, timeout=30,
                       json={"to": "iris:2", "steps": [10, 50, 100], "intervalSeconds": 2})
        assert r.status_code == 201, r.text
        wait_until(lambda: done(platform, "bad"), timeout=180, what="the canary to finish")
    result = canary(platform, "bad")
    assert result["phase"] == "rolled-back", result
    assert result["weight"] == 10
    assert "error rate" in result["message"]
    event = next(e for e in platform.events("bad") if e["reason"] == "CanaryRolledBack")
    assert event["type"] == "Warning"
    assert "failed at 10% on error rate" in event["message"]
    assert "vs stable 0.0%" in event["message"]
    final = deployed(platform, "bad")
    assert [(p["name"], p["model"], p["weight"]) for p in final["spec"]["predictors"]] == [("main", "iris:1", 100)]
    assert kinds(platform, "bad") == ["applied", "canary-step", "canary-rollback"]
    platform.wait_ready("bad", 1, revision=final["metadata"]["revision"])


def test_a_canary_can_be_aborted_and_is_followed_by_the_cli(platform: Platform) -> None:
    deploy(platform, "stop")
    remote = ["--remote", platform.api]
    started = run_pier(["rollout", "canary", "stop", "--to", "iris:2", "--steps", "50", "--interval", "5m",
                        "--no-wait", *remote], platform.home, **platform.env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "canary of default/stop" in started.stdout
    wait_until(lambda: canary(platform, "stop")["phase"] == "analyzing", timeout=90, what="the canary analyzing")
    aborted = run_pier(["rollout", "canary", "stop", "--abort", "-o", "json", *remote], platform.home, **platform.env)
    assert aborted.returncode == 1, aborted.stdout + aborted.stderr  # not promoted
    assert '"phase": "aborted"' in aborted.stdout
    assert "CanaryAborted" in reasons(platform, "stop")
    final = deployed(platform, "stop")
    assert [p["name"] for p in final["spec"]["predictors"]] == ["main"]
    shown = run_pier(["rollout", "canary", "stop", *remote], platform.home, **platform.env)
    assert shown.returncode == 1
    assert "aborted" in shown.stdout
    bad = run_pier(["rollout", "canary", "stop", "--to", "iris:2", "--interval", "soon", *remote], platform.home,
                   **platform.env)
    assert bad.returncode == 3
    assert "--interval 'soon'" in bad.stderr
    described = run_pier(["describe", "stop", *remote], platform.home, **platform.env)
    assert described.returncode == 0, described.stderr
    assert "Traffic (last 60 s" in described.stdout
    assert "Canary:" in described.stdout
