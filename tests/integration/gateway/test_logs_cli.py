"""`pier logs predictions` as a user runs it (the real CLI, a real PIER_HOME with records in both sinks),
and `pier logs NAME`, which still asks the control plane for the replicas' logs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from modelpier.gateway.predlog import PredictionLogger, PredictionRecord
from tests.support.procs import free_port, run_pier


def record(ts: float, request_id: str, deployment: str, *, cache_hit: bool = False) -> PredictionRecord:
    return PredictionRecord(
        ts=ts, request_id=request_id, project="acme", deployment=deployment, predictor="main",
        model_version="iris:3", status=200, latency_ms=1.5, cache_hit=cache_hit,
        request_body=b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', response_body=b'{"predictions": [0]}',
        request_content_type="application/json", response_content_type="application/json")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway's home: acme/iris logged to jsonl (one record an hour old), acme/fraud to sqlite."""
    folder = tmp_path_factory.mktemp("home")
    now = time.time()

    async def write() -> None:
        logger = PredictionLogger(folder)
        logger.log(record(now - 3600, "old", "iris"))
        for i in range(4):
            logger.log(record(now - 10 + i, f"iris-{i}", "iris", cache_hit=i == 3))
        for i in range(2):
            logger.log(record(now - 5 + i, f"fraud-{i}", "fraud"), sink="sqlite")
        await logger.aclose()

    asyncio.run(write())
    return folder


def test_the_tail_as_json(home: Path) -> None:
    result = run_pier(["logs", "predictions", "iris", "--project", "acme", "--tail", "2", "-o", "json"], home,
                      check=True)
    records = json.loads(result.stdout)
    assert [r["requestId"] for r in records] == ["iris-2", "iris-3"]
    assert records[-1]["cacheHit"] is True
    assert records[-1]["request"]["body"] == {"inputs": [[5.1, 3.5, 1.4, 0.2]]}


def test_since_and_the_sqlite_sink(home: Path) -> None:
    recent = run_pier(["logs", "predictions", "iris", "-p", "acme", "--since", "10m", "-o", "json"], home, check=True)
    assert [r["requestId"] for r in json.loads(recent.stdout)] == [f"iris-{i}" for i in range(4)]
    everything = run_pier(["logs", "predictions", "iris", "-p", "acme", "-o", "json"], home, check=True)
    assert len(json.loads(everything.stdout)) == 5
    fraud = run_pier(["logs", "predictions", "fraud", "-p", "acme", "-o", "json"], home, check=True)
    assert [r["requestId"] for r in json.loads(fraud.stdout)] == ["fraud-0", "fraud-1"]


def test_the_table_for_people(home: Path) -> None:
    result = run_pier(["logs", "predictions", "iris", "-p", "acme", "--tail", "1"], home, check=True,
                      COLUMNS="200")
    assert "iris-3" in result.stdout
    assert "iris:3" in result.stdout
    assert "hit" in result.stdout
    assert '{"predictions":[0]}' in result.stdout
    empty = run_pier(["logs", "predictions", "iris", "-p", "acme", "--since", "1s"], home, check=True)
    assert "no prediction of acme/iris was logged since 1s" in empty.stderr


def test_an_unknown_deployment_is_a_clear_error(home: Path) -> None:
    result = run_pier(["logs", "predictions", "ghost", "-p", "acme"], home)
    assert result.returncode == 4
    assert "no prediction log for acme/ghost" in result.stderr
    assert "predictionLog" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["--since", "yesterday"], 3, "--since 'yesterday' is neither a duration"),
    (["--since", "-5m"], 3, "--since '-5m'"),
    (["--tail", "0"], 2, "--tail"),
])
def test_bad_options_name_the_problem(home: Path, args: list[str], code: int, fragment: str) -> None:
    result = run_pier(["logs", "predictions", "iris", "-p", "acme", *args], home)
    assert result.returncode == code
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_name_is_refused(home: Path) -> None:
    result = run_pier(["logs", "predictions", "../../etc", "-p", "acme"], home)
    assert result.returncode == 3
    assert "is not a valid DNS-1123 label" in result.stderr


def test_pier_logs_name_still_asks_the_control_plane_for_replica_logs(home: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    for args in (["logs", "iris", "--tail", "5", "--remote", down], ["logs", "replicas", "iris", "--remote", down],
                 ["logs", "--tail", "5", "iris", "--remote", down]):
        result = run_pier(args, home)
        assert result.returncode == 9, args
        assert "cannot reach the modelpier control plane" in result.stderr
        assert "/deployments/iris/logs" in result.stderr


def test_help_explains_both_forms(home: Path) -> None:
    group = run_pier(["logs", "--help"], home, check=True, COLUMNS="200").stdout
    assert "pier logs NAME" in group
    assert "pier logs predictions NAME" in group
    assert "replicas" in group
    predictions = run_pier(["logs", "predictions", "--help"], home, check=True, COLUMNS="200").stdout
    for option in ("--project", "--tail", "--since", "--output"):
        assert option in predictions
    assert "gateway" in predictions
