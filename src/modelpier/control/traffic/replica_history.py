"""``ReplicaHistory``: ready and desired replicas per predictor over the last minutes, for the charts.

The gateways' traffic reports know which replicas have requests in flight, not how many run; the
reconciler knows that. It hands every status it derives to ``record`` (each pass, ~0.5 s); this
keeps the changes only (a step function per deployment), for ``retention_s`` in memory, and answers
``at(t)``: the counts in force at time ``t``, ``seen(since)``: the predictors that had a replica
at some point since then (a canary removed a minute ago still belongs on a 5-minute chart), and
``current(max_age_s)``: the counts now, of the deployments a pass looked at lately (the control
plane's metrics; a deleted deployment, or a standby that no longer reconciles, drops out). Nothing
is persisted: a restarted control plane starts empty (the charts show a gap before its first
pass). Thread-safe: the reconciler records on the event loop while the API reads in its thread pool.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from modelpier._lib.clock import Clock
from modelpier.control.traffic.store import RETENTION_S
from modelpier.spec.deployment import ModelDeploymentStatus

DeploymentKey = tuple[str, str]
Counts = Mapping[str, tuple[int, int]]  # predictor -> (ready, desired)


@dataclass(slots=True)
class _Timeline:
    times: list[float] = field(default_factory=list)
    counts: list[Counts] = field(default_factory=list)
    last_recorded: float = 0.0  # the last ``record``, changed or not


class ReplicaHistory:
    def __init__(self, clock: Clock, *, retention_s: float = RETENTION_S) -> None:
        self._clock = clock
        self.retention_s = retention_s
        self._lines: dict[DeploymentKey, _Timeline] = {}
        self._lock = threading.Lock()

    def record_status(self, key: DeploymentKey, status: ModelDeploymentStatus) -> None:
        """The reconciler's hook: the status it derived for ``key`` now."""
        self.record(key, {p.name: (p.ready_replicas, p.desired_replicas) for p in status.predictors})

    def record(self, key: DeploymentKey, counts: Counts) -> None:
        now = self._clock.now().timestamp()
        frozen = MappingProxyType(dict(counts))
        with self._lock:
            line = self._lines.setdefault(key, _Timeline())
            line.last_recorded = now
            if line.counts and line.counts[-1] == frozen:
                return
            line.times.append(now)
            line.counts.append(frozen)
            # Keep the last change before the retention: it is what was in force at the window's start.
            cutoff = now - self.retention_s
            drop = bisect_right(line.times, cutoff) - 1
            if drop > 0:
                del line.times[:drop], line.counts[:drop]

    def forget(self, key: DeploymentKey) -> None:
        with self._lock:
            self._lines.pop(key, None)

    def at(self, key: DeploymentKey, t: float) -> Counts | None:
        """The counts in force at ``t``; None before the first record (unknown, not zero)."""
        with self._lock:
            line = self._lines.get(key)
            if line is None:
                return None
            i = bisect_right(line.times, t)
            return line.counts[i - 1] if i else None

    def current(self, max_age_s: float) -> dict[DeploymentKey, Counts]:
        """The latest counts of each deployment recorded within the last ``max_age_s`` seconds."""
        cutoff = self._clock.now().timestamp() - max_age_s
        with self._lock:
            return {key: line.counts[-1] for key, line in self._lines.items()
                    if line.counts and line.last_recorded >= cutoff}

    def seen(self, key: DeploymentKey, since: float) -> list[str]:
        """Predictors with a ready or desired replica at some time from ``since`` on, first seen first."""
        with self._lock:
            line = self._lines.get(key)
            if line is None:
                return []
            start = max(bisect_right(line.times, since) - 1, 0)
            names = (name for counts in line.counts[start:] for name, (ready, desired) in counts.items()
                     if ready or desired)
            return list(dict.fromkeys(names))
