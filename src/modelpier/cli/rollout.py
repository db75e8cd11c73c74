"""``pier rollout history|undo|status``: a deployment's revisions, as ``kubectl rollout`` does them."""

from __future__ import annotations

import typer

from modelpier.cli.context import get_context
from modelpier.cli.deploy_support import NameArg, OutputOpt, ProjectOpt, RemoteOpt, deployment_client, wait_for_rollout
from modelpier.cli.deploy_view import history_table
from modelpier.cli.output import OutputFormat, emit
from modelpier.control.progress import rollout_progress

app = typer.Typer(help="Inspect and undo rollouts: revision history, rollback, progress.", no_args_is_help=True)


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
        revisions = client.revisions(project, name)
        serving = client.get(project, name).metadata.serving_revision
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
        result = client.rollback(project, name, to_revision)
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
    remote: str = RemoteOpt,
) -> None:
    """Wait for the latest revision to be ready; exit non-zero with the reason if its rollout fails."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        body = client.get(project, name)
        revision = body.metadata.revision
        since = next(r.created_at for r in client.revisions(project, name) if r.number == revision)
        if watch:
            progress = wait_for_rollout(client, project, name, revision, since, timeout=timeout, err=c.err)
        else:
            progress = rollout_progress(body.status, revision, since)
    c.out.print(progress.message)
    if progress.phase != "ready":
        raise typer.Exit(1)
