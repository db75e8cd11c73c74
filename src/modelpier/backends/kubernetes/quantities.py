"""Small pure conversions from spec numbers to Kubernetes value formats (quantities, durations)."""

from __future__ import annotations

import math


def _millis(value: float) -> int:
    """Whole thousandths, at least 1 for a positive value (``0.3 * 1000`` is not exactly 300)."""
    return max(1 if value > 0 else 0, round(value * 1000))


def quantity(value: float) -> str:
    """A Kubernetes quantity for a plain number: ``8`` → ``"8"``, ``7.5`` → ``"7500m"``."""
    if float(value).is_integer():
        return str(int(value))
    return f"{_millis(value)}m"


def gateway_duration(seconds: float) -> str:
    """A Gateway API duration (``^([0-9]{1,5}(h|m|s|ms)){1,4}$``), exact to the millisecond: ``30s``,
    ``2s500ms``, ``1h``, ``2m30s500ms``."""
    millis = _millis(seconds)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def istio_duration(seconds: float) -> str:
    """An Istio (protobuf) duration: ``30s``, ``1.5s``."""
    millis = _millis(seconds)
    whole, frac = divmod(millis, 1000)
    return f"{whole}s" if frac == 0 else f"{whole}.{frac:03d}".rstrip("0") + "s"


def whole_seconds(seconds: float, *, minimum: int = 1) -> int:
    """Integer seconds for fields typed int32 (probe periods, deadlines), rounded up."""
    return max(minimum, math.ceil(seconds))
