"""When the client tries a call again: only when the model certainly did not see it.

Pure decision, no I/O, no clock: ``decide_retry`` gets the failure, the attempt number, the time
left before the caller's deadline and a jitter draw, and answers how long to wait, or None.

Retried: a connection that was never established (refused, connect timeout, no free connection in
the pool before the deadline), and an answer that says it was refused before any work (HTTP 503, or
gRPC ``UNAVAILABLE``/``RESOURCE_EXHAUSTED``, with a ``Retry-After``: the server's full queue, the
gateway's ``limits.maxInFlight``, a model still loading). Never retried: anything after the request
may have been sent (a reset, a read timeout, a 500, a 504): the model may have run it, and a retry
could run it twice. The wait is exponential backoff with full jitter, at least the server's
Retry-After, and never past the deadline (then the last failure is raised instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Failure(Enum):
    NOT_CONNECTED = "not_connected"  # the request never left: safe to send again
    REFUSED = "refused"  # the server answered "not now" with Retry-After, before any work
    OTHER = "other"  # may have reached the model: never retried


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 3
    base_s: float = 0.05
    max_backoff_s: float = 2.0


def decide_retry(policy: RetryPolicy, failure: Failure, attempt: int, *, remaining_s: float,
                 jitter: float, retry_after_s: float | None = None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0), or None to give up.

    ``jitter`` is a draw in [0, 1); ``remaining_s`` is the time left before the caller's deadline.
    """
    if failure is Failure.OTHER or attempt >= policy.retries:
        return None
    backoff: float = min(policy.max_backoff_s, policy.base_s * (2 ** attempt)) * (0.5 + jitter / 2)
    wait = max(backoff, retry_after_s or 0.0) if failure is Failure.REFUSED else backoff
    if wait >= remaining_s:
        return None
    return wait
