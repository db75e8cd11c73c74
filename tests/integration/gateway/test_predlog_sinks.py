"""The prediction log end to end in both sinks: records logged on the event loop, written by the
writer thread to real files, read back by ``read_predictions`` (what ``pier logs predictions`` uses)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from modelpier.gateway.predlog import (
    PredictionLogger,
    PredictionRecord,
    ShadowOutcome,
    jsonl_path,
    read_predictions,
    sqlite_path,
)


def record(i: int, deployment: str = "iris", **changes: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "ts": 1_000.0 + i, "request_id": f"req-{i}", "project": "acme", "deployment": deployment,
        "predictor": "main" if i % 2 else "canary", "model_version": f"iris:{3 + i % 2}", "status": 200,
        "latency_ms": 2.5, "cache_hit": i % 3 == 0, "request_body": json.dumps({"inputs": [i]}).encode(),
        "response_body": json.dumps({"outputs": [i * 2]}).encode(), "request_content_type": "application/json",
        "response_content_type": "application/json"}
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def log_all(home: Path, items: list[tuple[PredictionRecord, str]], **options: int) -> PredictionLogger:
    async def scenario() -> PredictionLogger:
        logger = PredictionLogger(home, **options)  # type: ignore[arg-type]
        for item, sink in items:
            logger.log(item, sink=sink)
        await logger.aclose()
        return logger
    return asyncio.run(scenario())


@pytest.mark.parametrize("sink", ["jsonl", "sqlite"])
def test_records_round_trip(tmp_path: Path, sink: str) -> None:
    shadow = ShadowOutcome("shadow", "iris:9", 500, 9.0, b"oops", "text/plain")
    items = [(record(i), sink) for i in range(10)]
    items.append((record(10, request_body=bytes(range(8)), request_content_type="application/octet-stream",
                         response_body=b'{"outputs": [' + b"0, " * 50_000 + b"0]}", shadow=shadow), sink))
    logger = log_all(tmp_path, items)
    assert (logger.written, logger.dropped, logger.failed) == (11, 0, 0)

    read = read_predictions(tmp_path, "acme", "iris", limit=100)
    assert [r["requestId"] for r in read] == [f"req-{i}" for i in range(11)]  # oldest first
    first = read[0]
    assert (first["predictor"], first["modelVersion"], first["status"], first["cacheHit"]) == (
        "canary", "iris:3", 200, True)
    assert first["request"] == {"encoding": "json", "body": {"inputs": [0]}, "bytes": 15, "truncated": False}
    last = read[-1]
    assert last["request"]["encoding"] == "base64"
    assert base64.b64decode(last["request"]["body"]) == bytes(range(8))
    assert last["response"]["truncated"] is True
    assert last["response"]["bytes"] > 64 * 1024
    assert last["shadow"]["predictor"] == "shadow"
    assert base64.b64decode(last["shadow"]["response"]["body"]) == b"oops"

    tail = read_predictions(tmp_path, "acme", "iris", limit=3)
    assert [r["requestId"] for r in tail] == ["req-8", "req-9", "req-10"]
    recent = read_predictions(tmp_path, "acme", "iris", limit=100, since=1_007.0)
    assert [r["requestId"] for r in recent] == ["req-7", "req-8", "req-9", "req-10"]

    written = jsonl_path(tmp_path, "acme", "iris") if sink == "jsonl" else sqlite_path(tmp_path)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # request data: private to the gateway's user


def test_one_logger_serves_every_deployment_and_both_sinks(tmp_path: Path) -> None:
    items = [(record(i, deployment="iris"), "jsonl" if i % 2 else "sqlite") for i in range(6)]
    items += [(record(i, deployment="fraud"), "sqlite") for i in range(3)]
    log_all(tmp_path, items, batch_size=2)
    assert [r["requestId"] for r in read_predictions(tmp_path, "acme", "iris")] == [f"req-{i}" for i in range(6)]
    assert len(read_predictions(tmp_path, "acme", "fraud")) == 3
    assert not jsonl_path(tmp_path, "acme", "fraud").exists()
    with sqlite3.connect(sqlite_path(tmp_path)) as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone() == (6,)
        index = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index'").fetchone()[0]
        assert "(project, deployment, ts)" in index


def test_logging_never_waits_for_the_disk(tmp_path: Path) -> None:
    log_all(tmp_path, [(record(0), "sqlite")])  # the database exists
    async def scenario() -> PredictionLogger:
        logger = PredictionLogger(tmp_path, max_queue=100_000)
        blocker = sqlite3.connect(sqlite_path(tmp_path), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the disk is stuck: no write can land until this ends
        try:
            for i in range(1, 5_001):
                logger.log(record(i), sink="sqlite")
            assert logger.written == 0  # every call returned while nothing could be written
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await logger.aclose()
        return logger
    logger = asyncio.run(scenario())
    assert (logger.written, logger.dropped, logger.failed) == (5_000, 0, 0)
    assert len(read_predictions(tmp_path, "acme", "iris", limit=10_000)) == 5_001


def test_a_sink_that_cannot_be_written_counts_failures_and_keeps_going(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "predictions").mkdir(parents=True)
    (home / "predictions" / "acme").write_text("a file where the project's folder should be")
    logger = log_all(home, [(record(1), "jsonl"), (record(2), "sqlite")])
    assert (logger.written, logger.failed) == (1, 1)
    assert [r["requestId"] for r in read_predictions(home, "acme", "iris")] == ["req-2"]
