"""Small pure conversions from spec numbers to Kubernetes value formats (quantities, durations)."""

from __future__ import annotations

import math


def quantity(value: float) -> str:
    """A Kubernetes quantity for a plain number: ``8`` → ``"8"``, ``7.5`` → ``"7500m"``."""
    if float(value).is_integer():
        return str(int(value))
    return f"{math.ceil(value * 1000)}m"


def gateway_duration(seconds: float) -> str:
    """A Gateway API duration (``^([0-9]{1,5}(h|m|s|ms)){1,4}$``): ``30s``, or ``1500ms`` for fractions."""
    millis = math.ceil(seconds * 1000)
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    if millis <= 99_999:
        return f"{millis}ms"
    return f"{math.ceil(seconds)}s"


def istio_duration(seconds: float) -> str:
    """An Istio (protobuf) duration: ``30s``, ``1.5s``."""
    millis = math.ceil(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis / 1000:g}s"


def whole_seconds(seconds: float, *, minimum: int = 1) -> int:
    """Integer seconds for fields typed int32 (probe periods, deadlines), rounded up."""
    return max(minimum, math.ceil(seconds))
