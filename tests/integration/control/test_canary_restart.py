"""Progressive canaries survive a control-plane crash, through a real `pier up`: the platform process is
SIGKILLed (by its PID) mid-canary and started again on the same home; the new control plane resumes
the canary from the database and drives it to its end on fresh traffic (synthetic gateway reports, the
control plane's real interface): promoted when healthy, rolled back when the canary turns bad."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.control.traffic_feed import Feeder, Load
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS, run_pier, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # progressive canaries step on a timer

CANARY_SPEC = {"canary": {"minRequests": 5, "maxErrorRateIncrease": 0.05, "maxLatencyRatio": 2}}


@dataclass
class Restartable:
    platform: Platform
    stack: contextlib.ExitStack

    def crash_and_restart(self) -> None:
        """SIGKILL the platform process (nothing gets to clean up), then `pier up` again on the same home and
        ports; the gateway and replicas it started outlive it and are adopted."""
        p = self.platform
        p.proc.send_signal(signal.SIGKILL)
        assert p.proc.wait(timeout=30) == -signal.SIGKILL
        api_port, gw_port = (int(url.rsplit(":", 1)[1]) for url in (p.api, p.gateway))
        p.proc = self.stack.enter_context(run_platform(p.home, p.env, api_port=api_port, gw_port=gw_port)).proc


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restartable]:
    home: Path = tmp_path_factory.mktemp("canary-restart")
    save_models(home)
    env = replica_env(39000 + (os.getpid() % 50) * 200 % 20000)
    try:
        with contextlib.ExitStack() as stack:
            yield Restartable(stack.enter_context(run_platform(home, env)), stack)
    finally:
        pier_down(home, env)


def deploy(platform: Platform, name: str) -> None:
    platform.apply(name, [{"name": "main", "model": "iris:1", "replicas": 1}], **CANARY_SPEC)
    platform.wait_ready(name, 1)


def canary(platform: Platform, name: str) -> dict[str, Any]:
    r = httpx.get(platform.deployment(name) + "/canary", headers=ADMIN_HEADERS, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def start(platform: Platform, name: str, steps: list[int], interval_s: float) -> None:
    r = httpx.post(platform.deployment(name) + "/canary", headers=ADMIN_HEADERS, timeout=30,
                   json={"to": "iris:2", "steps": steps, "intervalSeconds": interval_s})
    assert r.status_code == 201, r.text


def reasons(platform: Platform, name: str) -> list[str]:
    return [e["reason"] for e in platform.events(name)]


def predictors(platform: Platform, name: str) -> list[tuple[str, str, int]]:
    body = httpx.get(platform.deployment(name), headers=ADMIN_HEADERS, timeout=10).json()
    return [(p["name"], body["resolved"][p["name"]], p["weight"]) for p in body["spec"]["predictors"]]


def causes(platform: Platform, name: str) -> list[str]:
    revisions = httpx.get(platform.deployment(name) + "/revisions", headers=ADMIN_HEADERS, timeout=10).json()
    return [r["cause"] for r in revisions]


def test_a_canary_killed_mid_way_resumes_after_a_restart_and_is_promoted(platform: Restartable) -> None:
    p = platform.platform
    deploy(p, "good")
    with Feeder(p.api, "default", "good") as gateway:
        gateway.set("main", Load(requests=10, latency_s=0.008))
        gateway.set("canary", Load(requests=10, latency_s=0.009))
        # 10 s a step: the resumed canary must still be at 50% when `pier describe` (a process start,
        # seconds on a loaded machine) reads it; a resume gives the step a fresh interval.
        start(p, "good", [25, 50, 100], 10)
        wait_until(lambda: canary(p, "good")["weight"] == 50, timeout=120, what="the canary at its second step")
        platform.crash_and_restart()
        # Resumed from the database (a kill right after the step's revision was made, before its number was
        # written down, shows the step before until the resumed drive adopts that revision).
        wait_until(lambda: canary(p, "good")["weight"] == 50, timeout=30, what="the resumed canary at 50%")
        resumed = canary(p, "good")
        assert not resumed["done"], resumed
        assert [r["verdict"] for r in resumed["results"] if r["verdict"] != "hold"] == ["promote-step"]
        described = run_pier(["describe", "good", "--remote", p.api], p.home, **p.env)
        assert described.returncode == 0, described.stderr
        assert "Canary:     canary → iris:2 at 50% (step 2 of 3)" in described.stdout
        assert "CanaryResumed" in described.stdout
        wait_until(lambda: bool(canary(p, "good")["done"]), timeout=180, what="the resumed canary to finish")
    result = canary(p, "good")
    assert result["phase"] == "promoted", result
    assert [r["verdict"] for r in result["results"] if r["verdict"] != "hold"] == ["promote-step", "promote-step"]
    assert predictors(p, "good") == [("main", "iris:2", 100)]
    # Each revision of the canary was made once, across the restart.
    assert [c for c in causes(p, "good") if c.startswith("canary")] == \
        ["canary iris:2 at 25%", "canary iris:2 at 50%", "canary iris:2 promoted"]
    events = reasons(p, "good")
    assert events.count("CanaryStarted") == 1
    assert events.count("CanaryResumed") == 1
    assert events.index("CanaryResumed") < events.index("CanaryPromoted")
    wait_until(lambda: p.infer("good").json().get("model_version") == "2", timeout=30,
               what="the gateway answering with the promoted version")


def test_a_resumed_canary_that_turns_bad_is_rolled_back(platform: Restartable) -> None:
    p = platform.platform
    deploy(p, "bad")
    with Feeder(p.api, "default", "bad") as gateway:
        gateway.set("main", Load(requests=10))
        gateway.set("canary", Load(requests=10))
        start(p, "bad", [10, 50, 100], 5)
        wait_until(lambda: canary(p, "bad")["phase"] == "analyzing", timeout=120, what="the canary analyzing")
        gateway.set("canary", Load(requests=10, errors=3))  # judged only after the restart: the window starts empty
        platform.crash_and_restart()
        wait_until(lambda: bool(canary(p, "bad")["done"]), timeout=180, what="the resumed canary to finish")
    result = canary(p, "bad")
    assert result["phase"] == "rolled-back", result
    assert result["weight"] == 10
    assert "failed at 10% on error rate" in result["message"]
    assert "CanaryResumed" in reasons(p, "bad")
    assert predictors(p, "bad") == [("main", "iris:1", 100)]
    revision = httpx.get(p.deployment("bad"), headers=ADMIN_HEADERS, timeout=10).json()["metadata"]["revision"]
    p.wait_ready("bad", 1, revision=revision)
