"""Passive health: replicas that keep failing connections are ejected for a while (outlier detection).

Active probes belong to the backend (the reconciler restarts a replica that stops answering); this
is the gateway's faster reflex between two routing tables: after ``threshold`` consecutive
connection failures a replica is skipped for ``base_s``, doubling on each ejection in a row up to
``max_s``; one success clears its record. When every replica of a predictor is ejected they are all
tried anyway (Envoy's "panic" mode): refusing every request would be worse than trying a suspect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int = 0
    ejections: int = 0
    until: float = 0.0


class PassiveHealth:
    def __init__(self, *, threshold: int = 3, base_s: float = 5.0, max_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.base_s, self.max_s = threshold, base_s, max_s
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self.ejections_total = 0

    def failed(self, replica_id: str) -> bool:
        """Record a connection failure; True when it ejects the replica."""
        record = self._records.setdefault(replica_id, _Record())
        record.failures += 1
        if record.failures < self.threshold:
            return False
        record.failures = 0
        record.until = self._clock() + min(self.base_s * 2 ** record.ejections, self.max_s)
        record.ejections += 1
        self.ejections_total += 1
        return True

    def succeeded(self, replica_id: str) -> None:
        if replica_id in self._records:
            del self._records[replica_id]

    def ejected(self, replica_ids: Iterable[str]) -> set[str]:
        """Of ``replica_ids``, those to skip now; empty when that would be all of them."""
        if not self._records:
            return set()
        now = self._clock()
        ids = list(replica_ids)
        out = {r for r in ids if (rec := self._records.get(r)) is not None and rec.until > now}
        return set() if len(out) == len(ids) else out
