"""The prediction log: sampling, how bodies are stored (JSON, base64, truncated), the bounded queue,
and reading a JSON-lines log back. Both sinks end to end: tests/integration/gateway/test_predlog_sinks.py."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest

from modelpier.cli.predictions import parse_since
from modelpier.errors import InvalidInput, InvalidName, NotFound
from modelpier.gateway.predlog import (
    PredictionLogger,
    PredictionRecord,
    ShadowOutcome,
    encode_body,
    jsonl_path,
    read_predictions,
    record_to_dict,
    should_log,
)


def record(ts: float = 1000.0, request_id: str = "r1", **changes: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "ts": ts, "request_id": request_id, "project": "acme", "deployment": "iris", "predictor": "main",
        "model_version": "iris:3", "status": 200, "latency_ms": 1.23456, "cache_hit": False,
        "request_body": b'{"inputs": [1]}', "response_body": b'{"outputs": [2]}',
        "request_content_type": "application/json", "response_content_type": "application/json"}
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rate", "rand", "expected"), [
    (None, 0.0, False), (0.0, 0.0, False), (1.0, 0.999, True), (0.1, 0.05, True), (0.1, 0.1, False)])
def test_sampling(rate: float | None, rand: float, expected: bool) -> None:
    assert should_log(rate, rand) is expected


def test_json_bodies_are_stored_as_json() -> None:
    assert encode_body(b'{"a": [1, 2]}', "application/json") == {
        "encoding": "json", "body": {"a": [1, 2]}, "bytes": 13, "truncated": False}
    assert encode_body(b"[1]", None)["encoding"] == "json"  # no content type: tried as JSON


@pytest.mark.parametrize(("body", "content_type"), [
    (bytes(range(10)), "application/octet-stream"), (b"{broken", "application/json"), (b"", "application/json"),
    (b'{"a": 1}', "text/plain")])
def test_other_bodies_are_base64(body: bytes, content_type: str) -> None:
    encoded = encode_body(body, content_type)
    assert (encoded["encoding"], encoded["truncated"], encoded["bytes"]) == ("base64", False, len(body))
    assert base64.b64decode(encoded["body"]) == body


def test_bodies_over_the_cap_are_truncated_and_flagged() -> None:
    big_json = b'{"inputs": [' + b"1, " * 100 + b"1]}"
    cut = encode_body(big_json, "application/json", max_bytes=20)
    assert cut == {"encoding": "text", "body": big_json[:20].decode(), "bytes": len(big_json), "truncated": True}
    binary = encode_body(bytes(100), "application/octet-stream", max_bytes=10)
    assert (binary["encoding"], binary["truncated"], binary["bytes"]) == ("base64", True, 100)
    assert base64.b64decode(binary["body"]) == bytes(10)


def test_a_record_with_its_shadow() -> None:
    shadow = ShadowOutcome("canary", "iris:4", 200, 2.0, b'{"outputs": [3]}', "application/json")
    data = record_to_dict(record(shadow=shadow, cache_hit=True))
    assert data == {
        "ts": 1000.0, "requestId": "r1", "project": "acme", "deployment": "iris", "predictor": "main",
        "modelVersion": "iris:3", "status": 200, "latencyMs": 1.235, "cacheHit": True,
        "request": {"encoding": "json", "body": {"inputs": [1]}, "bytes": 15, "truncated": False},
        "response": {"encoding": "json", "body": {"outputs": [2]}, "bytes": 16, "truncated": False},
        "shadow": {"predictor": "canary", "modelVersion": "iris:4", "status": 200, "latencyMs": 2.0,
                   "response": {"encoding": "json", "body": {"outputs": [3]}, "bytes": 16, "truncated": False}}}
    assert record_to_dict(record())["shadow"] is None


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    async def scenario() -> None:
        logger = PredictionLogger(tmp_path, max_queue=3, autostart=False)  # nothing drains until aclose
        for i in range(5):
            logger.log(record(ts=1000.0 + i, request_id=f"r{i}"))
        assert logger.dropped == 2
        await logger.aclose()
        assert (logger.written, logger.dropped, logger.failed) == (3, 2, 0)
        logger.log(record())  # after close: dropped, never an error on the request path
        assert logger.dropped == 3
    asyncio.run(scenario())
    assert [r["requestId"] for r in read_predictions(tmp_path, "acme", "iris")] == ["r0", "r1", "r2"]


def test_an_unknown_sink_is_a_programming_error(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, autostart=False)
    with pytest.raises(ValueError, match="unknown prediction log sink"):
        logger.log(record(), sink="kafka")
    asyncio.run(logger.aclose())


def test_reading_the_tail_across_a_rotated_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        logger = PredictionLogger(tmp_path, max_file_bytes=1500, batch_size=1)
        for i in range(12):
            logger.log(record(ts=1000.0 + i, request_id=f"r{i}"))
        await logger.aclose()
    asyncio.run(scenario())
    path = jsonl_path(tmp_path, "acme", "iris")
    assert path.with_name("iris.jsonl.1").is_file()
    assert path.stat().st_size <= 1500
    tail = read_predictions(tmp_path, "acme", "iris", limit=5)
    assert [r["requestId"] for r in tail] == [f"r{i}" for i in range(7, 12)]
    since = read_predictions(tmp_path, "acme", "iris", limit=100, since=1009.0)
    assert [r["requestId"] for r in since] == ["r9", "r10", "r11"]


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = jsonl_path(tmp_path, "acme", "iris")
    path.parent.mkdir(parents=True)
    path.write_text('{"ts": 1, "requestId": "a"}\n{"ts": 2, "requestId": "b"}\n{"ts": 3, "requ')
    assert [r["requestId"] for r in read_predictions(tmp_path, "acme", "iris")] == ["a", "b"]


def test_reading_an_unknown_deployment_or_a_bad_name(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no prediction log for acme/ghost"):
        read_predictions(tmp_path, "acme", "ghost")
    with pytest.raises(InvalidName, match="deployment"):
        read_predictions(tmp_path, "acme", "../etc")


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", 970.0), ("10m", 400.0), ("2h", 1000.0 - 7200), ("1d", 1000.0 - 86_400), ("1.5m", 910.0),
    ("2026-01-01T00:00:00Z", 1_767_225_600.0), ("2026-01-01T01:00:00+01:00", 1_767_225_600.0)])
def test_since_takes_durations_and_times(text: str, expected: float) -> None:
    assert parse_since(text, 1000.0) == expected


def test_since_without_a_zone_is_local_time() -> None:
    assert abs(parse_since(time.strftime("%Y-%m-%dT%H:%M:%S"), 0) - time.time()) < 2


@pytest.mark.parametrize("text", ["yesterday", "10", "-5m", "5 min", "", "10x"])
def test_bad_since_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="--since"):
        parse_since(text, 1000.0)
