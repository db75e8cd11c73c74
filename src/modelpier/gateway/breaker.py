"""``Breaker``: when to call a dependency that failed again, as a pure state machine over a clock.

Closed, every call may go. The first failure opens it: calls are not attempted for ``initial_s``,
then one probe goes (the slot is taken at once, so concurrent requests do not all dial), and each
failed probe doubles the wait up to ``max_s``. A success closes it. ``failed`` and ``succeeded``
say when the state changed, so the caller logs an outage once and its end once, not per request.
No I/O: the token verifier (verifier.py) calls it around its requests to the control plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Breaker:
    initial_s: float = 0.5
    max_s: float = 10.0
    open_since: float | None = None  # when the outage began; None while closed
    next_try: float = 0.0
    backoff_s: float = 0.0

    @property
    def open(self) -> bool:
        return self.open_since is not None

    def attempt(self, now: float) -> bool:
        """May a call go now? While open, one probe per backoff period (taken by this call)."""
        if self.open_since is None:
            return True
        if now < self.next_try:
            return False
        self.next_try = now + self.backoff_s  # held until the probe's outcome is known
        return True

    def failed(self, now: float) -> bool:
        """A call failed; True when this began an outage."""
        if self.open_since is None:
            self.open_since, self.backoff_s = now, self.initial_s
            self.next_try = now + self.backoff_s
            return True
        self.backoff_s = min(self.backoff_s * 2, self.max_s)
        self.next_try = now + self.backoff_s
        return False

    def succeeded(self, now: float) -> float | None:
        """A call succeeded; how long the outage it ends lasted (seconds), or None when there was none."""
        if self.open_since is None:
            return None
        lasted, self.open_since, self.backoff_s, self.next_try = now - self.open_since, None, 0.0, 0.0
        return lasted

    def retry_after_s(self, now: float) -> int:
        """Whole seconds until the next probe (at least 1): the Retry-After to give a refused caller."""
        return max(1, math.ceil(self.next_try - now))
