"""The two serving failures the platform's error tree has no leaf for yet.

Both are ``ServiceUnavailable`` (transient, retry later), so every generic handler maps them to
503; the server's transports refine them: ``DeadlineExceeded`` becomes 504 / DEADLINE_EXCEEDED,
``Overloaded`` carries the Retry-After hint.
"""

from __future__ import annotations

from typing import Any

from modelpier.errors import ServiceUnavailable


class Overloaded(ServiceUnavailable):
    """A model's queue is full; ``retry_after_s`` is a hint for the client."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServiceUnavailable):
    """A request did not finish within the server's per-request timeout."""

    code = "deadline_exceeded"
