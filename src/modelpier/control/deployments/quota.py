"""What a deployment spec costs in quota terms, and the check on apply. ``spec_resources`` is pure.

Replicas count at their ceiling: ``autoscaling.maxReplicas`` when autoscaling is set, so a
deployment admitted under quota can never autoscale past it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields

from modelpier.auth.quota import Limits, Resources, check_quota
from modelpier.errors import Forbidden
from modelpier.spec.deployment import ModelDeploymentSpec

_MEMORY_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
                 "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def cpu_millis(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def memory_bytes(quantity: str) -> int:
    for suffix in sorted(_MEMORY_UNITS, key=len, reverse=True):
        if quantity.endswith(suffix):
            return round(float(quantity[: -len(suffix)]) * _MEMORY_UNITS[suffix])
    return round(float(quantity))


def spec_resources(spec: ModelDeploymentSpec) -> Resources:
    replicas = cpu = memory = gpus = 0
    for p in spec.predictors:
        count = p.autoscaling.max_replicas if p.autoscaling is not None else p.replicas
        replicas += count
        cpu += count * cpu_millis(p.resources.cpu)
        memory += count * memory_bytes(p.resources.memory)
        gpus += count * p.resources.gpu
    return Resources(replicas=replicas, cpu_millis=cpu, memory_bytes=memory, gpus=gpus, deployments=1)


def _sum(items: Iterable[Resources]) -> Resources:
    names = [f.name for f in fields(Resources)]
    totals = dict.fromkeys(names, 0)
    for item in items:
        for n in names:
            totals[n] += getattr(item, n)
    return Resources(**totals)


def _minus(a: Resources, b: Resources) -> Resources:
    return Resources(**{f.name: getattr(a, f.name) - getattr(b, f.name) for f in fields(Resources)})


def require_within_quota(others: list[ModelDeploymentSpec], current: ModelDeploymentSpec | None,
                         new: ModelDeploymentSpec, limits: Limits) -> None:
    """``Forbidden`` naming every quota the new spec would exceed, and by how much."""
    now = spec_resources(current) if current is not None else Resources()
    usage = _sum([*map(spec_resources, others), now])
    exceeded = check_quota(usage, _minus(spec_resources(new), now), limits)
    if exceeded:
        raise Forbidden("project quota exceeded: " + "; ".join(e.message() for e in exceeded),
                        details={"exceeded": [{"quota": e.quota, "limit": e.limit, "would_use": e.would_use,
                                               "over_by": e.over_by} for e in exceeded]})


def require_storage_within_quota(usage_bytes: int, new_bytes: int, limits: Limits) -> None:
    """``Forbidden`` when storing ``new_bytes`` more would take the project past its storage quota."""
    exceeded = check_quota(Resources(storage_bytes=usage_bytes), Resources(storage_bytes=new_bytes), limits)
    if exceeded:
        e = exceeded[0]
        raise Forbidden(f"project quota exceeded: {e.message()}",
                        details={"exceeded": [{"quota": e.quota, "limit": e.limit, "would_use": e.would_use,
                                               "over_by": e.over_by}]})


LimitsSource = Callable[[str], Limits]
