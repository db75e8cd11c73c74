"""Acceptance tests of issue 5's traffic features against a real ``pier up``: weighted split, header
routes, shadow, cache, max in-flight, async jobs across a gateway restart, the prediction log.
Real replica processes and a real gateway process on loopback; every wait polls a condition."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.platform_support import (
    FAILING_MODEL,
    SLOW_MODEL,
    V2_BODY,
    Platform,
    pier_down,
    replica_env,
    run_platform,
    save_models,
    save_python_model,
)
from tests.support.procs import run_pier, wait_until

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("traffic")
    save_models(home)
    save_python_model(home, "slow", SLOW_MODEL, "Slow")
    save_python_model(home, "failing", FAILING_MODEL, "Failing")
    return home


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    # Short job leases: a job interrupted by a gateway restart is taken over within seconds.
    return {**replica_env(34000 + (os.getpid() % 50) * 200 % 20000), "PIER_GATEWAY__JOB_LEASE_S": "2"}


@pytest.fixture(scope="module")
def platform(home: Path, env: dict[str, str]) -> Iterator[Platform]:
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


def predictor(name: str, model: str, weight: int = 100, **extra: Any) -> dict[str, Any]:
    return {"name": name, "model": model, "weight": weight, **extra}


def post(platform: Platform, name: str, client: httpx.Client, model: str = "iris", **kwargs: Any) -> httpx.Response:
    return client.post(f"{platform.gateway}/default/{name}/v2/models/{model}/infer", json=V2_BODY, timeout=30,
                       **kwargs)


def metric(platform: Platform, line_start: str) -> float:
    text = httpx.get(f"{platform.gateway}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_weighted_split_holds_over_2000_requests_and_a_header_route_always_wins(platform: Platform) -> None:
    platform.apply("split", [predictor("main", "iris:1", 80), predictor("canary", "iris:2", 20)],
                   routes=[{"match": {"headers": {"x-segment": "beta"}}, "predictor": "canary"}])
    platform.wait_ready("split", 2)
    seen: Counter[tuple[str, str]] = Counter()
    with httpx.Client() as client:
        for _ in range(2000):
            r = post(platform, "split", client)
            assert r.status_code == 200, r.text
            seen[(r.headers["x-pier-predictor"], r.headers["x-pier-model-version"])] += 1
        routed = Counter(post(platform, "split", client, headers={"x-segment": "beta"}).headers["x-pier-predictor"]
                         for _ in range(100))
    assert set(seen) == {("main", "iris:1"), ("canary", "iris:2")}
    # 20% of 2,000 is 400, standard deviation 17.9: 4.5 sigma either side fails once in ~150,000 runs.
    assert 320 <= seen[("canary", "iris:2")] <= 480, seen
    assert routed == Counter({"canary": 100})


def test_shadow_failures_never_reach_callers_and_agreement_is_measured(platform: Platform) -> None:
    platform.apply("shadowed", [predictor("main", "iris:1"), predictor("broken", "failing:1", 0)],
                   shadow={"predictor": "broken"})
    platform.apply("compared", [predictor("main", "iris:1"), predictor("candidate", "iris:2", 0)],
                   shadow={"predictor": "candidate"})
    platform.wait_ready("shadowed", 2)
    platform.wait_ready("compared", 2)
    with httpx.Client() as client:
        answers = [post(platform, "shadowed", client) for _ in range(20)]
        compared = [post(platform, "compared", client) for _ in range(20)]
    assert [r.status_code for r in answers + compared] == [200] * 40
    assert {r.headers["x-pier-predictor"] for r in answers + compared} == {"main"}
    labels = 'deployment="shadowed",predictor="broken"'
    wait_until(lambda: metric(platform, f'pier_gateway_shadow_requests_total{{project="default",{labels},'
                                        'result="failed"}') == 20, what="20 shadow failures counted")
    cand = 'project="default",deployment="compared",predictor="candidate"'
    wait_until(lambda: metric(platform, f'pier_gateway_shadow_requests_total{{{cand},result="compared"}}') == 20,
               what="20 shadow comparisons")
    # The same input to iris:1 and iris:2 (C=1 vs C=0.5 on the same data): the same class.
    assert metric(platform, f'pier_gateway_shadow_requests_total{{{cand},result="agreed"}}') == 20


def test_cache_answers_identical_requests_without_the_replica(platform: Platform) -> None:
    platform.apply("cached", [predictor("main", "iris:1")], cache={"ttlSeconds": 60})
    platform.wait_ready("cached", 1)
    with httpx.Client() as client:
        first, second = post(platform, "cached", client), post(platform, "cached", client)
        other = client.post(f"{platform.gateway}/default/cached/v2/models/iris/infer", timeout=30, json={
            "inputs": [{**V2_BODY["inputs"][0], "data": [6.7, 3.0, 5.2, 2.3]}]})
    assert [r.headers["x-pier-cache"] for r in (first, second, other)] == ["miss", "hit", "miss"]
    assert first.json() == second.json()
    assert other.json()["outputs"] != first.json()["outputs"]
    labels = 'project="default",deployment="cached",predictor="main"'
    assert metric(platform, f"pier_gateway_cache_hits_total{{{labels}}}") == 1


def test_max_in_flight_refuses_the_excess_with_503_while_accepted_requests_succeed(platform: Platform) -> None:
    platform.apply("guarded", [predictor("main", "slow:1")], limits={"maxInFlight": 2})
    platform.wait_ready("guarded", 1)
    with httpx.Client(limits=httpx.Limits(max_connections=20)) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(platform, "guarded", client, model="slow"), range(8)))
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) == {200, 503}, statuses
    assert statuses[200] >= 2
    refused = next(r for r in answers if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert "maxInFlight" in refused.json()["error"]["message"]


def test_async_jobs_survive_a_gateway_restart(platform: Platform) -> None:
    platform.apply("batch", [predictor("main", "slow:1")])
    platform.wait_ready("batch", 1)
    with httpx.Client() as client:
        accepted = [post(platform, "batch", client, model="slow", headers={"prefer": "respond-async"})
                    for _ in range(4)]
        assert [r.status_code for r in accepted] == [202] * 4
        jobs = [r.headers["location"] for r in accepted]
        old = platform.gateway_pid()
        os.kill(old, signal.SIGKILL)  # mid-way: some jobs running, some queued
        # `pier up` notices and starts a new gateway, which takes over the jobs in the SQLite queue.
        wait_until(lambda: platform.gateway_pid() != old, timeout=30, what="a new gateway")

        def finished() -> bool:
            try:
                return all(client.get(f"{platform.gateway}{href}", timeout=5).json()["status"] == "succeeded"
                           for href in jobs)
            except (httpx.HTTPError, ValueError, KeyError):
                return False
        wait_until(finished, timeout=60, what="every job finished after the restart")
        results = [client.get(f"{platform.gateway}{href}").json()["result"] for href in jobs]
    assert {r["status"] for r in results} == {200}
    assert all(r["body"]["outputs"][0]["data"] == V2_BODY["inputs"][0]["data"] for r in results)


def test_sampled_predictions_are_logged_and_read_back_by_the_cli(platform: Platform, home: Path,
                                                                env: dict[str, str]) -> None:
    platform.apply("logged", [predictor("main", "iris:1")], predictionLog={"sampleRate": 1})
    platform.wait_ready("logged", 1)
    with httpx.Client() as client:
        answer = post(platform, "logged", client, headers={"x-request-id": "trace-me-1"})
    assert answer.status_code == 200

    def logged() -> bool:
        out = run_pier(["logs", "predictions", "logged", "-o", "json"], home, **env)
        return out.returncode == 0 and "trace-me-1" in out.stdout
    wait_until(logged, timeout=20, what="the request in the prediction log")
    records = json.loads(run_pier(["logs", "predictions", "logged", "-o", "json"], home, check=True, **env).stdout)
    record = next(r for r in records if r["requestId"] == "trace-me-1")
    assert (record["predictor"], record["modelVersion"], record["status"]) == ("main", "iris:1", 200)
