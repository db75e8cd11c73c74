"""How deployments look to people: listing tables, ``describe`` pages, revision history."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from modelpier.cli.output import simple_table
from modelpier.control.api.canary_wire import CanaryBody
from modelpier.control.api.traffic_wire import TrafficBody
from modelpier.control.api.wire import DeploymentBody, EventBody, RevisionBody
from modelpier.control.deployments.progress import summarize


def age(then: datetime, now: datetime | None = None) -> str:
    """Compact age like kubectl's: 42s, 5m, 3h, 2d."""
    seconds = max(int(((now or datetime.now(UTC)) - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def deployments_table(items: list[DeploymentBody], *, show_project: bool) -> Table | str:
    if not items:
        return "no deployments"
    columns = ["NAME", "READY", "REVISION", "URL", "AGE", "STATUS"]
    rows = []
    for d in items:
        s = d.status
        row = [d.metadata.name, f"{s.ready_replicas}/{s.desired_replicas}", d.metadata.revision, s.url or "-",
               age(d.metadata.created_at), summarize(s, deleting=d.metadata.deleting)]
        rows.append([d.metadata.project, *row] if show_project else row)
    return simple_table(None, ["PROJECT", *columns] if show_project else columns, rows)


def history_table(revisions: list[RevisionBody], serving: int | None) -> Table | str:
    if not revisions:
        return "no revisions"
    rows = [[r.number, "*" if r.number == serving else "", ", ".join(f"{p}={v}" for p, v in sorted(r.resolved.items())),
             f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.created_by, r.kind.value, r.cause] for r in revisions]
    return simple_table(None, ["REVISION", "SERVING", "VERSIONS", "CREATED", "BY", "KIND", "CAUSE"], rows)


def events_table(events: list[EventBody]) -> Table | str:
    if not events:
        return "no events"
    rows = [[age(e.time), e.type, e.reason, e.revision or "-", e.message] for e in events]
    return simple_table(None, ["AGE", "TYPE", "REASON", "REVISION", "MESSAGE"], rows)


def _fields(rows: list[tuple[str, object]], indent: int = 0) -> list[str]:
    width = max(len(k) for k, _ in rows) + 2
    return [f"{' ' * indent}{k + ':':<{width}}{v}" for k, v in rows]


def _predictor_lines(d: DeploymentBody) -> list[str]:
    spec, observed = d.spec, {p.name: p for p in d.status.predictors}
    lines = []
    for p in spec.predictors:
        version = d.resolved.get(p.name, "-") + (" (follows the alias)" if p.follow_alias else "")
        seen = observed.get(p.name)
        res = p.resources
        shadow = " (shadow: receives a copy of traffic)" if spec.shadow and spec.shadow.predictor == p.name else ""
        lines.append(f"  {p.name}:")
        lines += _fields([
            ("Model", f"{p.model or p.bundle} → {version}"),
            ("Weight", f"{p.weight}%{shadow}"),
            ("Replicas", f"{p.replicas} desired" + (f", {seen.ready_replicas}/{seen.desired_replicas} ready"
                                                    if seen else "")),
            ("Resources", f"cpu {res.cpu}, memory {res.memory}" + (f", gpu {res.gpu}" if res.gpu else "")),
            ("Batching", f"up to {p.batching.max_batch_size} rows, waits {p.batching.max_latency_ms:g} ms"
             if p.batching.enabled else "off"),
            ("Autoscaling", f"{p.autoscaling.min_replicas}-{p.autoscaling.max_replicas} replicas, "
                            f"{p.autoscaling.target_in_flight:g} in flight each" if p.autoscaling else "off"),
        ], indent=4)
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def traffic_lines(traffic: TrafficBody) -> list[str]:
    """Per predictor rate, errors, p99 and in-flight over the window, and the shadow comparison: the
    evidence for promoting a candidate."""
    lines = [f"Traffic (last {traffic.window:g} s, all gateways):"]
    for p in traffic.predictors:
        waiting = f", {p.waiting} waiting for a cold start" if p.waiting else ""
        lines.append(f"  {p.name}: {p.request_rate:.1f} req/s, errors {p.error_rate * 100:.1f}%, p50 {_ms(p.p50_ms)}, "
                     f"p99 {_ms(p.p99_ms)}, {p.in_flight} in flight{waiting}, "
                     f"replicas {p.ready_replicas}/{p.desired_replicas}")
    s = traffic.shadow
    if s is not None:
        agreement = "-" if s.agreement_rate is None else f"{s.agreement_rate * 100:.1f}%"
        error = "-" if s.mean_abs_error is None else f"{s.mean_abs_error:.4g}"
        lines.append(f"  shadow {s.predictor}: {s.mirrored} mirrored, {s.failed} failed, {s.compared} compared, "
                     f"agreement {agreement}, mean abs error {error}")
    return lines


def canary_line(canary: CanaryBody) -> str:
    return (f"Canary:     {canary.predictor} → {canary.version} at {canary.weight}% (step {canary.step} of "
            f"{len(canary.steps)}), {canary.phase}: {canary.message}")


def describe(d: DeploymentBody, events: list[EventBody], traffic: TrafficBody | None = None,
             canary: CanaryBody | None = None) -> Group:
    """A ``kubectl describe``-like page: summary, predictors, routes, traffic, conditions, recent events."""
    s, meta, spec = d.status, d.metadata, d.spec
    lines = _fields([
        ("Name", meta.name), ("Project", meta.project),
        ("Created", f"{meta.created_at:%Y-%m-%d %H:%M:%S} ({age(meta.created_at)} ago)"),
        ("Revision", f"{meta.revision} (serving: {meta.serving_revision or '-'})"),
        ("Status", summarize(s, deleting=meta.deleting)),
        ("Replicas", f"{s.ready_replicas} ready / {s.desired_replicas} desired"),
        ("URL", s.url or "-"), ("Auth", spec.auth.mode),
        ("Timeout", f"{spec.timeouts.request_seconds:g} s per request"),
        ("Rollout", f"maxSurge {spec.rollout.max_surge}, maxUnavailable {spec.rollout.max_unavailable}, "
                    f"ready within {spec.rollout.ready_timeout_seconds:g} s"),
        ("Cache", f"{spec.cache.ttl_seconds:g} s, {spec.cache.max_entries} entries" if spec.cache else "off"),
    ])
    lines += ["Predictors:", *_predictor_lines(d)]
    if spec.routes or spec.shadow:
        lines.append("Routes:")
        lines += [f"  headers {', '.join(f'{k}={v}' for k, v in r.match.headers.items()) or '(any)'} → {r.predictor}"
                  for r in spec.routes]
        if spec.shadow:
            lines.append(f"  mirror {spec.shadow.percent}% → {spec.shadow.predictor}")
    if traffic is not None:
        lines += traffic_lines(traffic)
    if canary is not None:
        lines.append(canary_line(canary))
    parts: list[Table | Text | str] = [Text("\n".join(lines))]
    parts.append(simple_table("Conditions", ["TYPE", "STATUS", "REASON", "MESSAGE", "SINCE"], [
        [c.type, c.status, c.reason, c.message, age(c.last_transition_time)] for c in s.conditions])
        if s.conditions else Text("Conditions: none reported yet (is a reconciler running?)"))
    parts.append(Text("Events:"))
    parts.append(events_table(events))
    return Group(*parts)
