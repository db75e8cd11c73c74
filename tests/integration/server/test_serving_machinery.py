"""Batching, limits and lifecycle of a real server, made deterministic with the gated python model.

A request whose value is 200+k blocks inside the model until the test creates ``gate-k``: the test
holds the model busy, waits (by polling /metrics) until the requests it sent are queued, then
releases it. Nothing here sleeps in place of waiting for a condition.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Served, eventually, start_server, write_gated_model


def body(*values: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [len(values), 1], "datatype": "FP64", "data": list(values)}]}


def post(server: Served, model: str, *values: float, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json=body(*values), timeout=timeout)


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


@pytest.fixture(scope="module")
def gated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gated_model(tmp_path_factory.mktemp("gated") / "model")


@pytest.fixture(scope="module")
def server(gated_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("pier-home")
    with start_server([f"batchy={gated_dir}", f"limited={gated_dir}", f"single={gated_dir}"], home,
                      "--timeout-s", "3", "--max-body-bytes", "4096",
                      "--model-option", "limited:max_queue=2", "--model-option", "single:batching=off") as served:
        yield served


def open_gate(folder: Path, k: int) -> None:
    (folder / f"gate-{k}").touch()


def queued(server: Served, model: str) -> float:
    return server.metric("modelpier_queue_depth", model=model)


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(
        server: Served, gated_dir: Path, pool: ThreadPoolExecutor) -> None:
    blocker = pool.submit(post, server, "batchy", 200)  # holds the model at gate-0
    eventually(lambda: queued(server, "batchy") == 1, "the first request to occupy the model")
    values = [float(v) for v in range(1, 11)]
    waiting = [pool.submit(post, server, "batchy", v) for v in values]
    eventually(lambda: queued(server, "batchy") == 11, "ten requests to queue behind it")
    open_gate(gated_dir, 0)
    assert blocker.result().json()["outputs"][0]["data"] == [400.0]
    for value, future in zip(values, waiting, strict=True):
        response = future.result()
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == [value * 2]  # its own row, not a neighbour's
    # Two model calls served eleven requests: the ten waiting ones as one batch of ten rows.
    assert server.metric("modelpier_batch_size_count", model="batchy") == 2
    assert server.metric("modelpier_batch_size_sum", model="batchy") == 11
    assert server.metric("modelpier_batch_size_bucket", le="8", model="batchy") == 1
    assert server.metric("modelpier_batch_size_bucket", le="16", model="batchy") == 2


def test_a_full_queue_answers_503_with_retry_after(
        server: Served, gated_dir: Path, pool: ThreadPoolExecutor) -> None:
    blocker = pool.submit(post, server, "limited", 201)
    eventually(lambda: queued(server, "limited") == 1, "the model to be busy")
    waiting = [pool.submit(post, server, "limited", v) for v in (1, 2)]
    eventually(lambda: queued(server, "limited") == 3, "two requests to queue")
    refused = post(server, "limited", 3)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert "queue is full" in refused.json()["error"]
    open_gate(gated_dir, 1)
    assert [f.result().status_code for f in (blocker, *waiting)] == [200, 200, 200]
    assert post(server, "limited", 4).status_code == 200
    assert server.metric("modelpier_requests_total", model="limited", protocol="v2-rest", status="overloaded") == 1


def test_a_request_over_the_timeout_gets_504_and_the_server_goes_on(server: Served, gated_dir: Path) -> None:
    slow = post(server, "single", 202)  # blocks at gate-2 longer than --timeout-s 3
    assert slow.status_code == 504
    assert "3s" in slow.json()["error"]
    open_gate(gated_dir, 2)
    assert post(server, "single", 5).json()["outputs"][0]["data"] == [10.0]


def test_a_body_over_the_limit_gets_413(server: Served) -> None:
    big = post(server, "batchy", *([1.25] * 1000))
    assert big.status_code == 413
    assert "4096" in big.json()["error"]
    assert post(server, "batchy", 1).status_code == 200


def test_readiness_waits_for_every_model_to_load(tmp_path: Path) -> None:
    folder = write_gated_model(tmp_path / "slow-loader")
    gate = tmp_path / "loaded"
    (folder / "load-gate-path").write_text(str(gate))
    with start_server([f"late={folder}"], tmp_path / "home", "--no-grpc", wait_ready=False) as server:
        assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{server.url}/v2/models/late/ready").status_code == 503
        early = post(server, "late", 1)
        assert early.status_code == 503
        assert "loading" in early.json()["error"]
        assert post(server, "other", 1).status_code == 404
        gate.touch()
        eventually(lambda: httpx.get(f"{server.url}/v2/health/ready").status_code == 200, "readiness")
        assert post(server, "late", 1).status_code == 200


def test_sigterm_drains_in_flight_requests(tmp_path: Path, pool: ThreadPoolExecutor) -> None:
    folder = write_gated_model(tmp_path / "model")
    with start_server([f"m={folder}"], tmp_path / "home", "--no-grpc") as server:
        in_flight: Future[httpx.Response] = pool.submit(post, server, "m", 200)
        eventually(lambda: queued(server, "m") == 1, "the request to reach the model")
        server.proc.send_signal(signal.SIGTERM)
        open_gate(folder, 0)
        response = in_flight.result()
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == [400.0]
        # Like uvicorn, the server re-raises the signal once drained, so its parent sees SIGTERM.
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_a_model_that_cannot_load_stops_the_server_with_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(AssertionError, match="exited with 1"), \
            start_server([str(broken)], tmp_path / "home", "--no-grpc"):
        pass
    assert "cannot serve" in next((tmp_path / "home").glob("serve-*.log")).read_text()


def test_several_workers_share_the_port(tmp_path: Path, gated_dir: Path) -> None:
    with start_server([f"w={gated_dir}"], tmp_path / "home", "--workers", "2", "--no-grpc") as server:
        eventually(lambda: all(post(server, "w", 1).status_code == 200 for _ in range(10)),
                   "every worker to be ready")
        assert server.stop() == 0
