"""The deployment page's live charts, from the platform's traffic summary. Pure.

Input is the body of ``GET /api/v1/projects/{p}/deployments/{d}/traffic`` (docs: the traffic contract):
a ``series`` of points, oldest first, each with per-predictor request rate, error rate, p50/p99 latency
and ready/desired replicas; a predictor that served or ran during the window (a canary that ended) is in
the series too, so it keeps its lines for that window. Output is what ``static/app.js`` hands to uPlot:
one shared time axis per chart and one value list per line (``None`` where a predictor has no point,
drawn as a gap), plus a text summary of the latest values for the table under the charts (screen readers
read the table; the canvases carry a label only). A missing or malformed body means "no traffic data
yet", never an error: the charts are an extra, the page must render without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NO_DATA = "no traffic data yet"
NONE = "\u2013"  # an en dash: "no value" in tables


@dataclass(frozen=True, slots=True)
class _Chart:
    id: str
    title: str
    unit: str
    lines: tuple[tuple[str, str, float], ...]  # (label suffix, field in a series point, scale)


_CHARTS = (
    _Chart("requests", "Request rate", "req/s", (("", "requestRate", 1.0),)),
    _Chart("errors", "Error rate", "%", (("", "errorRate", 100.0),)),
    _Chart("latency", "Latency", "ms", ((" p50", "p50Ms", 1.0), (" p99", "p99Ms", 1.0))),
    # Ready and desired (the control plane's record of each pass), not the replicas busy with a request.
    _Chart("replicas", "Replicas", "", ((" ready", "readyReplicas", 1.0), (" desired", "desiredReplicas", 1.0))),
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _points(body: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    points = []
    for point in body.get("series") or []:
        t = _number(point.get("t")) if isinstance(point, dict) else None
        predictors = point.get("predictors") if isinstance(point, dict) else None
        if t is not None and isinstance(predictors, dict):
            points.append((t, predictors))
    return points


def chart_data(body: dict[str, Any] | None) -> dict[str, Any]:
    """``{"available": False, "message": ...}`` or ``{"available": True, "charts": [...], "summary": [...]}``."""
    if not isinstance(body, dict):
        return {"available": False, "message": NO_DATA}
    points = _points(body)
    if not points:
        return {"available": False, "message": NO_DATA}
    # The summary lists predictors in the deployment's order: keep it, so a predictor keeps its colour.
    listed = [p["name"] for p in body.get("predictors") or [] if isinstance(p, dict) and isinstance(p.get("name"), str)]
    seen = {name for _, predictors in points for name in predictors if isinstance(name, str)}
    names = [n for n in dict.fromkeys(listed) if n in seen] + sorted(seen - set(listed))
    times = [t for t, _ in points]
    charts = []
    for chart in _CHARTS:
        series = []
        for name in names:
            for suffix, key, scale in chart.lines:
                values = []
                for _, predictors in points:
                    entry = predictors.get(name)
                    value = _number(entry.get(key)) if isinstance(entry, dict) else None
                    values.append(None if value is None else round(value * scale, 6))
                series.append({"label": f"{name}{suffix}", "values": values})
        charts.append({"id": chart.id, "title": chart.title, "unit": chart.unit, "t": times, "series": series})
    return {"available": True, "window": body.get("window"), "step": body.get("step"), "charts": charts,
            "summary": summary_rows(body)}


def _fmt(unit: str, scale: float = 1.0, digits: int = 2) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        number = _number(value)
        return NONE if number is None else f"{number * scale:.{digits}f}{unit}"
    return show


_SUMMARY: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("requestRate", "Requests", _fmt(" req/s")),
    ("errorRate", "Errors", _fmt(" %", 100.0)),
    ("p50Ms", "p50", _fmt(" ms", digits=1)),
    ("p99Ms", "p99", _fmt(" ms", digits=1)),
    ("inFlight", "In flight", _fmt("", digits=0)),
)


def summary_rows(body: dict[str, Any]) -> list[dict[str, str]]:
    """Per predictor, the window's figures as text (``"41.20 req/s"``; a dash where unknown)."""
    rows = []
    for p in body.get("predictors") or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        row = {"name": p["name"]}
        row.update({label: show(p.get(key)) for key, label, show in _SUMMARY})
        ready, desired = _number(p.get("readyReplicas")), _number(p.get("desiredReplicas"))
        row["Replicas"] = NONE if ready is None or desired is None else f"{ready:.0f}/{desired:.0f}"
        rows.append(row)
    return rows


SUMMARY_COLUMNS = ("name", *(label for _, label, _ in _SUMMARY), "Replicas")
