"""``pier bench NAME``: a bounded load against a deployment, through the gateway, measured.

Finds the deployment through the control plane's API (``ControlClient``), its model's input example
through the registry's endpoints to build a V2 request unless ``--data`` gives a body, and
its endpoint in the deployment's status (the gateway URL the control plane publishes), else
``http://127.0.0.1:{gateway.port}/{project}/{NAME}``. ``--url`` points at any endpoint the
user owns instead (a ``pier serve`` replica, a remote gateway); with ``--data`` too, no control plane
is asked at all. The load itself is ``bench/load.py``; the report ``bench/report.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelpier.bench.load import LoadPlan, LoadResult, probe, run_load
from modelpier.bench.load import Progress as LoadProgress
from modelpier.bench.payload import read_body, v2_request
from modelpier.bench.report import BenchReport, build_report, outcome_line
from modelpier.cli.context import CliContext, get_context
from modelpier.cli.deploy_support import DEFAULT_PROJECT, ProjectOpt, RemoteOpt, deployment_client
from modelpier.control.api import calls as api
from modelpier.errors import InvalidInput, NotFound, RemoteError
from modelpier.registry.wire import VersionBody
from modelpier.sdk.control_api import ControlClient, models
from modelpier.spec.names import ModelRef


@dataclass(frozen=True, slots=True)
class _Target:
    label: str
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


def _headers(items: list[str]) -> list[tuple[str, str]]:
    headers = []
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(f"--header {item!r}: expected NAME:VALUE, e.g. 'x-segment: beta'")
        headers.append((name.strip(), value.strip()))
    return headers


def _join(base: str, path: str) -> str:
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(f"--url {base!r}: expected an http:// or https:// URL")
    return base.rstrip("/") + "/" + path.lstrip("/") if path else base


def _version(client: ControlClient, project: str, ref: str) -> VersionBody:
    """The version a predictor resolved to, from the project's registry or the shared default one."""
    parsed = ModelRef.parse(ref)
    selector = str(parsed.version) if parsed.version is not None else parsed.alias or "latest"
    projects = [project, DEFAULT_PROJECT] if project != DEFAULT_PROJECT else [DEFAULT_PROJECT]
    for i, owner in enumerate(projects):
        try:
            return client.send(models.get_version(None if owner == DEFAULT_PROJECT else owner, parsed.name, selector))
        except NotFound:
            if i == len(projects) - 1:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def _resolve(c: CliContext, name: str, project: str, *, remote: str | None, url: str | None, path: str | None,
             data: Path | None, headers: list[tuple[str, str]]) -> _Target:
    body = read_body(data) if data is not None else None
    if url is not None and body is not None:  # any endpoint the user owns: no control plane needed
        return _Target(name, _join(url, path if path is not None else f"v2/models/{name}/infer"), body, tuple(headers))
    with deployment_client(c, remote) as client:
        deployment = client.send(api.get_deployment(project, name))  # NotFound names the deployment
        serving = [p for p in deployment.spec.predictors if p.weight > 0] or deployment.spec.predictors
        predictor = serving[0]
        ref = deployment.resolved.get(predictor.name) or predictor.model
        if ref is None:
            raise InvalidInput(f"{project}/{name}: predictor {predictor.name!r} serves no model; "
                               "pass --data and --path")
        model = ModelRef.parse(ref).name
        if body is None:
            version = _version(client, project, ref)
            if version.input_example is None:
                raise InvalidInput(f"model {version.ref} has no input example to build a request from; pass --data "
                                   "FILE with a request body (JSON)")
            inputs = [(t.name, t.datatype) for t in version.signature.inputs] if version.signature else []
            body = json.dumps(v2_request(version.input_example, inputs)).encode()
    base = url or deployment.status.url or f"http://127.0.0.1:{c.settings.gateway.port}/{project}/{name}"
    if url is None and deployment.spec.auth.mode == "token" and c.token \
            and not any(k.lower() == "authorization" for k, _ in headers):
        headers = [*headers, ("Authorization", f"Bearer {c.token}")]  # the gateway's own check; never to --url
    return _Target(f"{project}/{name}", _join(base, path if path is not None else f"v2/models/{model}/infer"),
                   body, tuple(headers))


@contextmanager
def _progress_display(console: Console, plan: LoadPlan) -> Iterator[Progress]:
    total = f"{plan.duration_s:g} s" if plan.requests is None else f"{plan.requests} requests"
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[stats]}"), console=console, transient=True) as display:
        display.add_task(f"bench ({total}, {plan.concurrency} workers)", total=1.0, stats="")
        yield display


def _update(display: Progress, snapshot: LoadProgress) -> None:
    rate = snapshot.completed / snapshot.elapsed_s if snapshot.elapsed_s > 0 else 0.0
    stats = "warming up" if snapshot.warming_up else f"{snapshot.completed} done, {snapshot.failed} failed"
    display.update(display.task_ids[0], completed=snapshot.fraction, stats=f"{stats}, {rate:,.0f} req/s")


def _run(plan: LoadPlan, console: Console) -> LoadResult:
    async def main() -> LoadResult:
        await probe(plan)  # RemoteUnreachable before any worker starts
        with _progress_display(console, plan) as display:
            return await run_load(plan, on_progress=lambda snapshot: _update(display, snapshot))

    try:
        import uvloop  # the server's event loop: a faster client leaves more of the machine to the server

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the model server
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def report_table(report: BenchReport) -> Table:
    table = Table(title=f"pier bench {report.target}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    lat = report.latency
    table.add_row("url", f"{report.method} {report.url}")
    table.add_row("load", f"{report.concurrency} concurrent, {report.duration_s:g} s measured"
                  + (f" after {report.warmup_s:g} s warm-up" if report.warmup_s else ""))
    table.add_row("requests", f"{report.requests:,} ({report.ok:,} ok, {report.failed:,} failed)")
    table.add_row("throughput", f"{report.throughput_rps:,.1f} req/s ({report.ok_rps:,.1f} ok/s)")
    table.add_row("latency", f"p50 {lat.p50_ms:.2f} ms  p90 {lat.p90_ms:.2f} ms  p99 {lat.p99_ms:.2f} ms  "
                  f"max {lat.max_ms:.2f} ms  (mean {lat.mean_ms:.2f} ms)")
    table.add_row("status", ", ".join(f"{s} x {n:,}" for s, n in report.status_counts.items()) or "-")
    table.add_row("errors", ", ".join(f"{k} x {n:,}" for k, n in report.errors.items()) or "none")
    if report.first_failure:
        table.add_row("first failure", report.first_failure)
    return table


def bench(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name. With --url and --data, only a label (and the model "
                                         "name in the default --path)."),
    project: str = ProjectOpt,
    remote: str = RemoteOpt,
    concurrency: int | None = typer.Option(None, "--concurrency", "-c", min=1, max=10_000,
                                           help="Workers, each with one keep-alive connection and one request in "
                                                "flight (default: bench.concurrency, PIER_BENCH__CONCURRENCY, 8)."),
    duration: float | None = typer.Option(None, "--duration", "-d", min=0.1,
                                          help="Seconds to measure (default: bench.duration_s, "
                                               "PIER_BENCH__DURATION_S, 10, unless --requests is given; with both, "
                                               "whichever ends first)."),
    requests: int = typer.Option(None, "--requests", "-n", min=1, help="Stop after this many measured requests."),
    data: Path = typer.Option(None, "--data", help="JSON file sent as every request's body (default: a V2 request "
                                                   "built from the deployed model's input example)."),
    path: str = typer.Option(None, "--path", help="Path after the endpoint, default v2/models/MODEL/infer (MODEL: "
                                                  "the deployed model's name), e.g. v1/models/iris:predict."),
    url: str = typer.Option(None, "--url", help="Endpoint to load instead of the gateway's, e.g. a replica "
                                                "(http://127.0.0.1:8080) or a remote gateway "
                                                "(https://gw.example.com/acme/iris); --path is appended."),
    header: list[str] = typer.Option([], "--header", "-H", metavar="NAME:VALUE",
                                     help="Extra request header, repeatable (e.g. -H 'x-segment: beta')."),
    json_out: Path = typer.Option(None, "--json-out", help="Also save the report as JSON to this file."),
    warmup: float | None = typer.Option(None, "--warmup", min=0,
                                        help="Seconds of load before measuring starts (fills connection pools, "
                                             "caches, batchers; default: bench.warmup_s, PIER_BENCH__WARMUP_S, 0)."),
    timeout_s: float | None = typer.Option(None, "--timeout-s", min=0.001,
                                           help="Per-request timeout in seconds; a request over it counts as an "
                                                "error (default: bench.timeout_s, PIER_BENCH__TIMEOUT_S, 30)."),
) -> None:
    """Load-test a deployment through the gateway: throughput, latency percentiles, status codes, errors.

    Bounded (--duration, --requests) and closed-loop: each worker awaits its answer before sending again.
    Exits non-zero when no request succeeded.
    """
    c = get_context(ctx)
    defaults = c.settings.bench
    concurrency = defaults.concurrency if concurrency is None else concurrency
    warmup = defaults.warmup_s if warmup is None else warmup
    timeout_s = defaults.timeout_s if timeout_s is None else timeout_s
    headers = _headers(header)
    target = _resolve(c, name, project, remote=remote, url=url, path=path, data=data, headers=headers)
    sent = target.headers
    if not any(k.lower() == "content-type" for k, _ in sent):
        sent = (*sent, ("Content-Type", "application/json"))
    if duration is None and requests is None:
        duration = defaults.duration_s
    plan = LoadPlan(url=target.url, body=target.body, headers=sent, concurrency=concurrency, duration_s=duration,
                    requests=requests, warmup_s=warmup, timeout_s=timeout_s)
    result = _run(plan, c.err)
    report = build_report(target=target.label, url=plan.url, method=plan.method, concurrency=concurrency,
                          warmup_s=warmup, elapsed_s=result.elapsed_s, histogram=result.histogram,
                          statuses=result.statuses, errors=result.errors, first_failure=result.first_failure)
    c.out.print(report_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        c.err.print(f"report saved to {json_out}")
    if report.ok == 0:
        raise RemoteError(f"no request succeeded: {outcome_line(report)} (of {report.requests} sent to {plan.url})",
                          details={"status_counts": report.status_counts, "errors": report.errors})
