"""``pier logs``: a deployment's replica logs, and ``pier logs predictions``, its prediction log.

``pier logs NAME`` asks the control plane for the replicas' last log lines, as it always did (it is
short for ``pier logs replicas NAME``). ``pier logs predictions NAME`` reads the prediction log the
gateway writes under its own ``$PIER_HOME/predictions`` — so it runs on the gateway's machine (with
``pier up``, the machine you deploy from) and needs no control plane.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import orjson
import typer
from typer._click.core import Context as ClickContext  # Typer vendors Click; its groups take this type
from typer.core import TyperGroup

from modelpier.cli import deploy
from modelpier.cli.context import get_context
from modelpier.cli.deploy_support import NameArg, OutputOpt, ProjectOpt
from modelpier.cli.output import OutputFormat, emit, simple_table
from modelpier.errors import InvalidInput
from modelpier.gateway.predlog import read_predictions

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


class _LogsGroup(TyperGroup):
    """A first argument that is not a subcommand (a deployment name, an option) selects ``replicas``,
    so ``pier logs NAME --tail 5`` keeps working next to ``pier logs predictions NAME``."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["replicas", *args]
        return super().parse_args(ctx, args)


logs_app = typer.Typer(
    cls=_LogsGroup, no_args_is_help=True,
    help="Logs of a deployment. `pier logs NAME` prints its replicas' last log lines (from the control "
         "plane; the same as `pier logs replicas NAME`); `pier logs predictions NAME` prints its prediction "
         "log (requests and answers the gateway sampled, read from this machine's PIER_HOME).")
logs_app.command("replicas")(deploy.logs)


def parse_since(text: str, now: float) -> float:
    """Unix seconds from ``30s``/``10m``/``2h``/``1d`` (that long before ``now``) or an ISO 8601 time
    (``2026-05-01T12:00:00Z``; without a zone, local time); ``InvalidInput`` otherwise."""
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise InvalidInput(f"--since {text!r} is neither a duration like 30s, 10m, 2h or 1d nor a time like "
                           "2026-05-01T12:00:00Z") from None


def _preview(part: dict[str, Any] | None, width: int = 60) -> str:
    if not part:
        return ""
    encoding, body = part.get("encoding"), part.get("body")
    if encoding == "json":
        text = orjson.dumps(body).decode()
    elif encoding == "text":
        text = str(body)
    else:
        text = f"<{part.get('bytes', 0)} bytes>"
    if part.get("truncated") and encoding != "base64":
        text += "…"
    return text if len(text) <= width else text[:width - 1] + "…"


def _row(r: dict[str, Any], with_shadow: bool) -> list[Any]:
    row = [datetime.fromtimestamp(float(r["ts"])).strftime("%Y-%m-%d %H:%M:%S"), r.get("requestId"),
           r.get("predictor"), r.get("modelVersion") or "", r.get("status"), f"{float(r.get('latencyMs', 0)):.1f}",
           "hit" if r.get("cacheHit") else "", _preview(r.get("request")), _preview(r.get("response"))]
    if with_shadow:
        shadow = r.get("shadow")
        row.append("" if not shadow else f"{shadow.get('predictor')} {shadow.get('status')} "
                   f"{float(shadow.get('latencyMs', 0)):.1f}ms {_preview(shadow.get('response'), 30)}")
    return row


@logs_app.command("predictions")
def predictions(
    ctx: typer.Context,
    name: str = NameArg,
    project: str = ProjectOpt,
    tail: int = typer.Option(20, "--tail", min=1, max=100_000, help="Last records to print."),
    since: str = typer.Option(None, "--since", help="Only records from then on: a duration back from now "
                              "(30s, 10m, 2h, 1d) or a time (2026-05-01T12:00:00Z)."),
    output: OutputFormat = OutputOpt,
) -> None:
    """Print a deployment's prediction log: sampled requests, answers, predictor, model version, latency.

    Reads $PIER_HOME/predictions on this machine, where the gateway writes both sinks (jsonl and sqlite).

    Run it where the gateway runs; the deployment's spec must set `predictionLog`.
    """
    c = get_context(ctx)
    start = parse_since(since, time.time()) if since is not None else None
    records = read_predictions(c.settings.home, project, name, limit=tail, since=start)
    if output is not OutputFormat.table:
        emit(c.out, records, output, lambda: "")
        return
    if not records:
        c.err.print(f"no prediction of {project}/{name} was logged" + (f" since {since}" if since else ""))
        return
    with_shadow = any(r.get("shadow") for r in records)
    columns = ["TIME", "REQUEST ID", "PREDICTOR", "VERSION", "STATUS", "MS", "CACHE", "REQUEST", "RESPONSE"]
    emit(c.out, records, output, lambda: simple_table(
        None, columns + (["SHADOW"] if with_shadow else []), [_row(r, with_shadow) for r in records]))
