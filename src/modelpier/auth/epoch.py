"""``AuthEpoch``: the auth epoch as this process last read it, and who to tell when it moves.

The epoch is a counter in the auth store that grows whenever access shrinks (a token revoked, a
member removed or demoted, a user deleted). The control plane publishes it in the routing table;
a gateway drops every token check it cached when it sees a new value, so a revoked token stops
working there as soon as the table arrives rather than when a cache entry expires.

``AuthService`` advances it after each such change; the routing feed subscribes to wake the
gateways' held long polls. Listeners are called on the thread that advanced the epoch (a request
worker), so they must be thread-safe and quick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

EpochListener = Callable[[int], None]


class AuthEpoch:
    """Thread-safe. Only ever grows here: a value older than the one held is ignored."""

    def __init__(self, value: int = 0) -> None:
        self._value = value
        self._lock = threading.Lock()
        self._listeners: list[EpochListener] = []

    @property
    def value(self) -> int:
        return self._value

    def subscribe(self, listener: EpochListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def advance(self, value: int) -> bool:
        """Move to ``value`` if it is newer, telling every listener; whether it moved."""
        with self._lock:
            if value <= self._value:
                return False
            self._value = value
            listeners = list(self._listeners)
        for listener in listeners:
            listener(value)
        return True
