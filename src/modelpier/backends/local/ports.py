"""Free loopback ports for replicas, from the configured range."""

from __future__ import annotations

import socket
from collections.abc import Collection

from modelpier.errors import ServiceUnavailable


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    """Hands out ports in ``[low, high]``, round-robin from the last one handed out.

    Round-robin keeps a just-released port (whose old connections may linger in TIME_WAIT, or which
    a gateway still pools) out of use for as long as possible. A port is handed out only if it can be
    bound right now; the child binds it a moment later, and a lost race shows up as a crashed start.
    """

    def __init__(self, low: int, high: int, host: str = "127.0.0.1") -> None:
        if low > high:
            raise ValueError(f"empty replica port range {low}-{high}")
        self.low, self.high, self.host = low, high, host
        self._next = low

    def allocate(self, in_use: Collection[int], prefer: int | None = None) -> int:
        if prefer is not None and prefer not in in_use and port_is_free(prefer, self.host):
            return prefer
        size = self.high - self.low + 1
        for i in range(size):
            port = self.low + (self._next - self.low + i) % size
            if port not in in_use and port_is_free(port, self.host):
                self._next = port + 1 if port < self.high else self.low
                return port
        raise ServiceUnavailable(
            f"no free port in the replica port range {self.low}-{self.high} ({len(in_use)} used by replicas); "
            f"widen platform.replica_port_min/replica_port_max or stop some deployments",
            details={"low": self.low, "high": self.high})
