"""A project's usage against its quotas, as the project page's bars show it. Pure.

Usage is counted the way the API checks quotas (``control.quota.spec_resources``): replicas at their
autoscaling ceiling, CPU and memory per replica times replicas, every deployment not being deleted;
storage is the size of every version of the project's models.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from modelpier.auth.quota import Resources
from modelpier.auth.wire import QuotaBody
from modelpier.control.deployments.quota import spec_resources
from modelpier.spec.deployment import ModelDeploymentSpec

_LABELS = {"replicas": "Replicas", "cpu_millis": "CPU", "memory_bytes": "Memory", "gpus": "GPUs",
           "storage_bytes": "Model storage", "deployments": "Deployments"}
_BYTES = ("memory_bytes", "storage_bytes")
# A bar this full is shown as a warning (and, past the limit, as over).
WARN_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class UsageBar:
    quota: str  # the QuotaBody field
    label: str
    used: int
    limit: int | None  # None: unlimited

    @property
    def fraction(self) -> float | None:
        if self.limit is None:
            return None
        if self.limit == 0:
            return 0.0 if self.used == 0 else float("inf")  # none allowed, none used: nothing to warn of
        return self.used / self.limit

    @property
    def level(self) -> str:
        """``none`` (unlimited), ``ok``, ``warn`` or ``over``: said in words next to the bar, too."""
        f = self.fraction
        if f is None:
            return "none"
        return "over" if f > 1 else "warn" if f >= WARN_FRACTION else "ok"

    def show(self, amount: int | None) -> str:
        if amount is None:
            return "unlimited"
        if self.quota in _BYTES:
            return format_bytes(amount)
        if self.quota == "cpu_millis":
            return f"{amount / 1000:g} core{'' if amount == 1000 else 's'}"
        return str(amount)


def project_usage(specs: Iterable[ModelDeploymentSpec], storage_bytes: int) -> Resources:
    totals = dict.fromkeys((f.name for f in fields(Resources)), 0)
    for spec in specs:
        cost = spec_resources(spec)
        for name in totals:
            totals[name] += getattr(cost, name)
    totals["storage_bytes"] = storage_bytes
    return Resources(**totals)


def usage_bars(usage: Resources, quota: QuotaBody) -> list[UsageBar]:
    return [UsageBar(f.name, _LABELS[f.name], getattr(usage, f.name), getattr(quota, f.name))
            for f in fields(Resources)]


def format_bytes(amount: int) -> str:
    """Binary units, as Kubernetes quantities and ``pier`` print them: ``931 B``, ``1.5 GiB``."""
    value = float(amount)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
