"""Async jobs, the pure parts: the wire form, ids, callback URLs. Stores and the runner run against
real SQLite and Redis in tests/integration/gateway/."""

from __future__ import annotations

import asyncio
import base64
import re
import stat
from pathlib import Path

import pytest

from modelpier.errors import InvalidInput
from modelpier.gateway.jobs import (
    Job,
    JobRequest,
    JobResult,
    job_to_wire,
    new_job_id,
    open_job_store,
    validate_callback_url,
)
from modelpier.gateway.jobs.model import job_status
from modelpier.gateway.jobs.redis_store import RedisJobStore
from modelpier.gateway.jobs.sqlite_store import SqliteJobStore

REQUEST = JobRequest("POST", "/v2/models/iris/infer", (("content-type", "application/json"),), b'{"inputs": []}')
T0 = 1_767_225_600.25  # 2026-01-01T00:00:00.25Z


def job(**changes: object) -> Job:
    fields: dict[str, object] = {"id": "abc", "project": "acme", "deployment": "iris", "status": "queued",
                                 "created_at": T0, "updated_at": T0 + 1, "request": REQUEST}
    fields.update(changes)
    return Job(**fields)  # type: ignore[arg-type]


def test_a_queued_job_on_the_wire() -> None:
    assert job_to_wire(job()) == {"id": "abc", "status": "queued", "createdAt": "2026-01-01T00:00:00.250000Z",
                                  "updatedAt": "2026-01-01T00:00:01.250000Z", "attempts": 0, "result": None,
                                  "error": None}


def test_a_json_result_is_embedded_as_json() -> None:
    result = JobResult(200, (("Content-Type", "application/json; charset=utf-8"), ("X-A", "1"), ("x-a", "2")),
                       b'{"outputs": [{"data": [1, 2]}]}')
    wire = job_to_wire(job(status="succeeded", attempts=1, result=result))
    assert wire["status"] == "succeeded"
    assert wire["attempts"] == 1
    assert wire["result"] == {"status": 200, "headers": {"content-type": "application/json; charset=utf-8",
                                                         "x-a": "1, 2"},
                              "body": {"outputs": [{"data": [1, 2]}]}}


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/octet-stream", bytes(range(256))), ("text/plain", b"hello"), ("application/json", b"{not json"),
    (None, b'{"a": 1}')])
def test_other_results_are_base64(content_type: str | None, body: bytes) -> None:
    headers = (("content-type", content_type),) if content_type else ()
    wire = job_to_wire(job(status="succeeded", result=JobResult(200, headers, body)))["result"]
    assert wire["encoding"] == "base64"
    assert base64.b64decode(wire["body"]) == body


def test_a_vendor_json_type_is_json_too() -> None:
    result = JobResult(400, (("content-type", "application/problem+json"),), b'{"error": "bad"}')
    assert job_to_wire(job(status="succeeded", result=result))["result"]["body"] == {"error": "bad"}


def test_a_failed_job_carries_its_error() -> None:
    wire = job_to_wire(job(status="failed", error="no replica answered", attempts=2))
    assert (wire["status"], wire["error"], wire["result"]) == ("failed", "no replica answered", None)


def test_job_ids_are_url_safe_and_unguessable() -> None:
    ids = {new_job_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", i) for i in ids)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "https://example.com/a?b=c", "http://h/"])
def test_good_callback_urls(url: str) -> None:
    assert validate_callback_url(url) == url


@pytest.mark.parametrize(("url", "fragment"), [
    ("ftp://example.com/x", "http:// or https://"), ("/relative/path", "http:// or https://"),
    ("http:///nohost", "with a host"), ("http://h:99999/", "does not parse"),
    ("http://h/" + "a" * 3000, "characters long")])
def test_bad_callback_urls_are_invalid_input(url: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        validate_callback_url(url)


def test_stored_statuses_are_checked() -> None:
    assert job_status("running") == "running"
    with pytest.raises(ValueError, match="unknown job status"):
        job_status("paused")


def test_open_job_store_defaults_to_a_private_sqlite_file_under_home(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = open_job_store(tmp_path, None)
        assert isinstance(store, SqliteJobStore)
        job = await store.submit("acme", "iris", REQUEST)
        assert await store.get(job.id) == job
        await store.aclose()
    asyncio.run(scenario())
    path = tmp_path / "gateway" / "jobs.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds request bodies


def test_open_job_store_with_redis_and_a_bad_url(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = open_job_store(tmp_path, "redis://127.0.0.1:1/0")  # not contacted until used
        assert isinstance(store, RedisJobStore)
        await store.aclose()
    asyncio.run(scenario())
    with pytest.raises(InvalidInput, match="PIER_GATEWAY__REDIS_URL"):
        open_job_store(tmp_path, "postgres://db/1")
