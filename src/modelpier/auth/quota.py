"""``check_quota``: would a request take a project past its limits? Pure: usage and limits in, list out.

An empty list means the request fits. Each ``Exceeded`` names the quota, the limit, what the project
would use, and by how much it is over, so the refusal message tells the user what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of each quota-counted resource (CPU in millicores, memory and storage in bytes)."""

    replicas: int = 0
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0
    storage_bytes: int = 0
    deployments: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-project limits; None is unlimited."""

    replicas: int | None = None
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    gpus: int | None = None
    storage_bytes: int | None = None
    deployments: int | None = None


@dataclass(frozen=True, slots=True)
class Exceeded:
    quota: str
    limit: int
    would_use: int

    @property
    def over_by(self) -> int:
        return self.would_use - self.limit

    def message(self) -> str:
        return f"{self.quota}: limit {self.limit}, would use {self.would_use} (over by {self.over_by})"


def check_quota(usage: Resources, request: Resources, limits: Limits) -> list[Exceeded]:
    """Quotas ``usage + request`` would exceed. ``request`` may be negative (a scale-down): it never
    fails a quota that it does not grow, so a project already over (limits lowered) can shrink."""
    out: list[Exceeded] = []
    for f in fields(Resources):
        limit = getattr(limits, f.name)
        asked = getattr(request, f.name)
        would = getattr(usage, f.name) + asked
        if limit is not None and asked > 0 and would > limit:
            out.append(Exceeded(f.name, limit, would))
    return out
