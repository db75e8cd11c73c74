"""`pier bench` as a user runs it, against a real `pier up` platform: gateway, control plane, replica.

The default request body is the deployed model's input example (from the registry), the default
URL the deployment's gateway endpoint (from its status). Short runs (about a second each).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.platform_support import V2_BODY, Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import free_port, run_pier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return replica_env(36000 + (os.getpid() % 50) * 200 % 20000)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("bench")
    save_models(home)
    try:
        with run_platform(home, env) as p:
            p.apply("iris", [{"name": "main", "model": "iris:1", "replicas": 1}])
            p.wait_ready("iris", 1)
            yield p
    finally:
        pier_down(home, env)


def bench(platform: Platform, *args: str) -> tuple[int, str, str]:
    result = run_pier(["bench", *args, "--remote", platform.api], platform.home, timeout=120, **platform.env)
    return result.returncode, result.stdout, result.stderr


def test_bench_a_deployment_through_the_gateway(platform: Platform, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code, stdout, stderr = bench(platform, "iris", "--duration", "1", "--concurrency", "4", "--warmup", "0.3",
                                 "--json-out", str(out))
    assert code == 0, stdout + stderr
    report = json.loads(out.read_text())
    assert report["url"] == f"{platform.gateway}/default/iris/v2/models/iris/infer"  # from the deployment's status
    assert report["target"] == "default/iris"
    assert report["requests"] > 0
    assert report["ok"] == report["requests"]
    assert report["status_counts"] == {"200": report["requests"]}
    assert report["errors"] == {}
    assert 1.0 <= report["duration_s"] < 3.0
    assert report["throughput_rps"] == pytest.approx(report["requests"] / report["duration_s"], rel=0.01)
    lat = report["latency"]
    assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert lat["count"] == report["requests"]
    for words in ("throughput", "p50", "p99", "200 x"):
        assert words in stdout


def test_bench_stops_after_a_number_of_requests(platform: Platform) -> None:
    code, stdout, stderr = bench(platform, "iris", "--requests", "150", "-c", "3")
    assert code == 0, stdout + stderr
    assert "150 (150 ok, 0 failed)" in stdout


def test_bench_a_replica_directly_with_a_body_file(platform: Platform, tmp_path: Path) -> None:
    state = json.loads((platform.home / "replicas" / "state.json").read_text())
    port = next(r["port"] for r in state["replicas"] if r["spec"]["deployment"] == "iris")
    body = tmp_path / "body.json"
    body.write_text(json.dumps(V2_BODY))
    out = tmp_path / "direct.json"
    code, stdout, stderr = bench(platform, "iris", "--url", f"http://127.0.0.1:{port}", "--data", str(body),
                                 "-n", "50", "--json-out", str(out))
    assert code == 0, stdout + stderr
    report = json.loads(out.read_text())
    assert report["url"] == f"http://127.0.0.1:{port}/v2/models/iris/infer"
    assert report["status_counts"] == {"200": 50}


def test_an_unknown_deployment_is_a_clear_error(platform: Platform) -> None:
    code, stdout, stderr = bench(platform, "nope", "--duration", "1")
    assert code == 4, stdout + stderr
    assert "nope" in stderr
    assert "Traceback" not in stderr


def test_an_unreachable_endpoint_is_a_clear_error(platform: Platform, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps(V2_BODY))
    port = free_port()
    code, _, stderr = bench(platform, "iris", "--url", f"http://127.0.0.1:{port}", "--data", str(body))
    assert code == 9
    assert f"cannot reach http://127.0.0.1:{port}/v2/models/iris/infer" in stderr


@pytest.mark.parametrize(("content", "message"), [(None, "no such file"), ("inputs: [", "is not JSON")])
def test_a_bad_data_file_is_a_clear_error(platform: Platform, tmp_path: Path, content: str | None,
                                          message: str) -> None:
    body = tmp_path / "body.json"
    if content is not None:
        body.write_text(content)
    code, _, stderr = bench(platform, "iris", "--data", str(body))
    assert code == 3
    assert f"--data {body}" in stderr
    assert message in stderr


def test_no_successful_response_exits_non_zero_with_the_status_counts(platform: Platform) -> None:
    code, stdout, stderr = bench(platform, "iris", "--path", "v2/models/nope/infer", "-n", "20")
    assert code == 9, stdout + stderr
    assert "no request succeeded: 404 x 20" in stderr
    assert "first failure" in stdout  # the replica's own words: which model it does not serve
    assert "nope" in stdout
