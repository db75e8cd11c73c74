"""``pier rollout history|undo|status``: a deployment's revisions, as ``kubectl rollout`` does them;
``pier rollout canary``: a progressive canary driven by the control plane."""

from __future__ import annotations

import time

import typer

from modelpier.cli.canary_view import canary_panel, parse_duration, parse_steps
from modelpier.cli.context import CliContext, get_context
from modelpier.cli.deploy_support import NameArg, OutputOpt, ProjectOpt, RemoteOpt, deployment_client, wait_for_rollout
from modelpier.cli.deploy_view import history_table
from modelpier.cli.output import OutputFormat, emit
from modelpier.control.api import calls as api
from modelpier.control.api.canary_wire import CanaryBody
from modelpier.control.deployments.progress import rollout_progress
from modelpier.errors import NotFound, ServiceUnavailable
from modelpier.sdk.control_api import ControlClient

app = typer.Typer(help="Inspect and undo rollouts: revision history, rollback, progress; progressive canaries.",
                  no_args_is_help=True)


@app.command("history")
def history(
    ctx: typer.Context,
    name: str = NameArg,
    project: str = ProjectOpt,
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """List revisions with the versions they ran and why each was made; * marks the serving one."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        revisions = client.send(api.revisions(project, name))
        serving = client.send(api.get_deployment(project, name)).metadata.serving_revision
    emit(c.out, revisions, output, lambda: history_table(revisions, serving))


@app.command("undo")
def undo(
    ctx: typer.Context,
    name: str = NameArg,
    to_revision: int = typer.Option(None, "--to-revision", min=1,
                                    help="Revision to go back to; default: the previous one."),
    project: str = ProjectOpt,
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Roll back: re-apply an earlier revision's spec and model versions as a new revision."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        result = client.send(api.rollback(project, name, to_revision))
    rev = result.revision
    emit(c.out, result, output, lambda: (
        f"deployment {project}/{name}: revision {rev.number} created ({rev.cause})" if result.created
        else f"deployment {project}/{name}: already runs that content (revision {rev.number}); nothing to do"))


@app.command("status")
def status(
    ctx: typer.Context,
    name: str = NameArg,
    project: str = ProjectOpt,
    watch: bool = typer.Option(True, "--watch/--no-watch", "-w", help="Wait until the rollout finishes."),
    timeout: float = typer.Option(300, "--timeout", min=1, help="Seconds to wait at most."),
    revision: int = typer.Option(None, "--revision", min=1,
                                 help="Wait for this revision, also until it exists: one a followed alias makes "
                                      "by itself (the control plane checks aliases every control.alias_poll_seconds)."),
    remote: str = RemoteOpt,
) -> None:
    """Wait for the latest revision (or --revision) to be ready; exit non-zero with the reason if its rollout
    fails."""
    c = get_context(ctx)
    deadline = time.monotonic() + timeout
    with deployment_client(c, remote) as client:
        body = client.send(api.get_deployment(project, name))
        while watch and revision is not None and body.metadata.revision < revision:
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(f"{project}/{name} has no revision {revision} after {timeout:g} s (the latest "
                                         f"is {body.metadata.revision})")
            time.sleep(0.25)
            body = client.send(api.get_deployment(project, name))
        if revision is not None and body.metadata.revision < revision:
            raise NotFound(f"{project}/{name} has no revision {revision} (the latest is {body.metadata.revision})")
        revision = revision or body.metadata.revision
        since = next(r.created_at for r in client.send(api.revisions(project, name)) if r.number == revision)
        if watch:
            progress = wait_for_rollout(client, project, name, revision, since,
                                        timeout=max(deadline - time.monotonic(), 1.0), err=c.err)
        else:
            progress = rollout_progress(body.status, revision, since)
    c.out.print(progress.message)
    if progress.phase != "ready":
        raise typer.Exit(1)


@app.command("canary")
def canary(
    ctx: typer.Context,
    name: str = NameArg,
    to: str = typer.Option(None, "--to", help="Model reference the canary runs (iris:2, iris:staging). Without "
                                              "--to: follow (or show) the canary that runs now."),
    steps: str = typer.Option("10,50,100", "--steps", help="Canary weights in percent, increasing. Each step is "
                                                           "judged over one interval; after the last step below "
                                                           "100 the canary is promoted (a final 100 says so)."),
    interval: str = typer.Option("60s", "--interval", help="Traffic judged per step: 90, 60s, 2m (at most 15m)."),
    predictor: str = typer.Option("canary", "--predictor", help="Name of the canary predictor (added, or "
                                                                "replaced if the deployment has one)."),
    abort: bool = typer.Option(False, "--abort", help="Abort the running canary: it is rolled back."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the canary until it is promoted or rolled "
                                                             "back. Ctrl-C stops following; the canary keeps "
                                                             "running on the control plane."),
    project: str = ProjectOpt,
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Progressive canary: move traffic to a new model step by step, promote it or roll it back.

    The control plane adds a canary predictor running --to at the first step's weight, waits for it
    to be ready, then per interval compares its error rate and p99 latency with the stable
    predictor's (thresholds in spec.canary). Healthy: next step; after the last, the stable
    predictor takes the new model. Worse: rolled back, with an event naming the metric. Exits 0
    when promoted, 1 otherwise.
    """
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        if abort:
            body = client.send(api.abort_canary(project, name))
        elif to is not None:
            interval_s = parse_duration(interval, option="--interval")
            body = client.send(api.start_canary(project, name, to=to, steps=parse_steps(steps), interval_s=interval_s,
                                                predictor=predictor))
        else:
            body = client.send(api.canary(project, name))
        followed = wait and not body.done and not abort
        if followed:
            body = _follow(c, client, project, name, body, live=output is OutputFormat.table)
    if output is not OutputFormat.table:
        emit(c.out, body, output, lambda: "")
    elif not followed:  # a followed canary's last panel is already on the screen
        c.out.print(canary_panel(body))
    if body.done and body.phase != "promoted":
        raise typer.Exit(1)


def _follow(c: CliContext, client: ControlClient, project: str, name: str, body: CanaryBody, *,
            live: bool, poll_s: float = 1.0) -> CanaryBody:
    """Poll the canary until it is done, redrawing its panel; Ctrl-C leaves it running and says so."""
    from rich.live import Live

    try:
        with Live(canary_panel(body), console=c.out if live else c.err, auto_refresh=False,
                  transient=not live) as display:
            while not body.done:
                time.sleep(poll_s)
                body = client.send(api.canary(project, name))
                if live:
                    display.update(canary_panel(body), refresh=True)
    except KeyboardInterrupt:
        c.err.print(f"stopped following; the canary keeps running on the control plane (phase {body.phase}). "
                    f"Follow it again with `pier rollout canary {name} -p {project}`, roll it back with "
                    f"`pier rollout canary {name} -p {project} --abort`.")
        raise typer.Exit(130) from None
    return body
