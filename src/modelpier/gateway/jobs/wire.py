"""The JSON form of a job, as ``GET .../jobs/{id}`` answers it and the callback POSTs it.

A JSON answer is embedded as JSON, anything else (binary tensors, text) as base64 with
``"encoding": "base64"``, so every result fits in one JSON document.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from modelpier.gateway.jobs.model import Job, JobResult


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def result_to_wire(result: JobResult) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in result.headers:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value  # RFC 9110 §5.3
    wire: dict[str, Any] = {"status": result.status, "headers": headers}
    if _is_json(headers.get("content-type")):
        try:
            wire["body"] = orjson.loads(result.body)
        except orjson.JSONDecodeError:
            pass
        else:
            return wire
    wire["body"] = base64.b64encode(result.body).decode("ascii")
    wire["encoding"] = "base64"
    return wire


def job_to_wire(job: Job) -> dict[str, Any]:
    """``{"id", "status", "createdAt", "updatedAt", "attempts", "result", "error"}``; times in UTC ISO 8601."""
    return {"id": job.id, "status": job.status, "createdAt": _timestamp(job.created_at),
            "updatedAt": _timestamp(job.updated_at), "attempts": job.attempts,
            "result": None if job.result is None else result_to_wire(job.result), "error": job.error}
