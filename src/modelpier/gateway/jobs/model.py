"""Asynchronous inference jobs: what a caller submitted, where it stands, what the model answered.

A job is one HTTP request to a deployment, accepted now (202 with the job's id) and run later by a
``JobRunner`` through the gateway's forwarding path. Values are frozen: a store returns a new
``Job`` after every change. Times are unix seconds.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

from modelpier.errors import InvalidInput

JobStatus = Literal["queued", "running", "succeeded", "failed"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})
MAX_CALLBACK_URL = 2048


def job_status(value: str) -> JobStatus:
    """A stored status back as the type; ``ValueError`` for anything a store never writes."""
    if value not in {"queued", "running", "succeeded", "failed"}:
        raise ValueError(f"unknown job status {value!r}")
    return cast(JobStatus, value)


def new_job_id() -> str:
    """144 random bits in 24 URL-safe characters: the id is the only capability needed to read the
    result (with access to the deployment), so it must not be guessable."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """The request to replay: ``path`` is what follows ``/{project}/{deployment}``, with its query."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class JobResult:
    """The model's HTTP answer, whatever its status (a 4xx from the model is a result, not a failure)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Job:
    """``queued`` → ``running`` (claimed by a runner, ``attempts`` counts claims) → ``succeeded`` (an
    answer is in ``result``) or ``failed`` (no answer; ``error`` says why)."""

    id: str
    project: str
    deployment: str
    status: JobStatus
    created_at: float
    updated_at: float
    request: JobRequest
    callback_url: str | None = None
    attempts: int = 0
    result: JobResult | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def validate_callback_url(url: str) -> str:
    """An absolute http(s) URL, or ``InvalidInput`` naming what is wrong with it.

    The gateway POSTs the result there from its own network position, so only http and https are
    accepted; which hosts are reachable is the operator's network policy (docs/gateway-patterns.md).
    """
    if len(url) > MAX_CALLBACK_URL:
        raise InvalidInput(f"callback URL is {len(url)} characters long; the limit is {MAX_CALLBACK_URL}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise InvalidInput(f"callback URL {url!r} does not parse: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"callback URL {url!r} must be an absolute http:// or https:// URL with a host")
    return url
