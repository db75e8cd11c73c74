"""How a progressive canary looks to people: one panel, redrawn while ``pier rollout canary`` follows it."""

from __future__ import annotations

import re

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelpier.control.api.canary_wire import CanaryBody
from modelpier.errors import InvalidInput
from modelpier.spec.traffic import PredictorTrafficWindow

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_STYLE = {"promoted": "green", "rolled-back": "red", "failed": "red", "aborted": "yellow", "stopped": "yellow"}


def parse_duration(text: str, *, option: str) -> float:
    """``90``, ``60s``, ``2m``, ``500ms`` → seconds; ``InvalidInput`` naming the option otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise InvalidInput(f"{option} {text!r} is not a duration like 90, 60s or 2m")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_steps(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"--steps {text!r} must be comma-separated percentages like 10,50,100") from None


def _stats(w: PredictorTrafficWindow) -> str:
    p99 = "-" if w.p99_ms is None else f"{w.p99_ms:.1f} ms"
    return f"{w.requests} req, {w.error_rate * 100:.1f}% err, p99 {p99}"


def _ladder(body: CanaryBody) -> Text:
    text = Text()
    for i, weight in enumerate(body.steps):
        if i:
            text.append(" → ")
        index = i + 1
        if index < body.step or (body.phase in ("promoting", "promoted") and weight < 100):
            text.append(f"{weight}% ✓", style="green")
        elif index == body.step and not body.done:
            text.append(f"[{weight}%]", style="bold")
        else:
            text.append(f"{weight}%", style="dim")
    return text


def canary_panel(body: CanaryBody) -> Panel:
    lines = Table.grid(padding=(0, 2))
    lines.add_column(style="bold")
    lines.add_column()
    lines.add_row("Canary", f"{body.predictor} → {body.version}")
    lines.add_row("Stable", f"{body.stable} → {body.stable_version}")
    lines.add_row("Steps", _ladder(body))
    lines.add_row("Interval", f"{body.interval_seconds:g} s per step")
    lines.add_row("Phase", Text(body.phase, style=_STYLE.get(body.phase, "cyan")))
    lines.add_row("Now", body.message)
    parts: list[Table | Text] = [lines]
    if body.results:
        results = Table(title="Judgements (newest last)", title_justify="left", expand=True)
        for column in ("STEP", "VERDICT", "CANARY", "STABLE", "WHY"):
            results.add_column(column)
        for r in body.results[-6:]:
            style = {"rollback": "red", "hold": "yellow"}.get(r.verdict, "green")
            results.add_row(f"{r.weight}%", Text(r.verdict, style=style), _stats(r.canary), _stats(r.stable), r.reason)
        parts.append(results)
    return Panel(Group(*parts), title=f"canary of {body.project}/{body.deployment}", title_align="left")
