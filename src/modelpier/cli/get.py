"""``pier get …`` and ``pier create project``: list and show control-plane objects through the API."""

from __future__ import annotations

import typer

from modelpier.cli.context import get_context
from modelpier.cli.deploy_support import NameArg, OutputOpt, ProjectOpt, RemoteOpt, deployment_client
from modelpier.cli.deploy_view import deployments_table
from modelpier.cli.output import OutputFormat, emit, simple_table
from modelpier.cli.rollout import history
from modelpier.control.api import calls as api
from modelpier.sdk.control_api import access

app = typer.Typer(help="List deployments, revisions and projects.", no_args_is_help=True)
create_app = typer.Typer(help="Create projects.", no_args_is_help=True)


@app.command("deployments")
def get_deployments(
    ctx: typer.Context,
    project: str = ProjectOpt,
    all_projects: bool = typer.Option(False, "--all-projects", "-A", help="Deployments of every project."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """List the deployments of a project: READY replicas, REVISION, URL, AGE, STATUS."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        items = client.send(api.list_deployments(None if all_projects else project))
    emit(c.out, items, output, lambda: deployments_table(items, show_project=all_projects))


@app.command("deployment")
def get_deployment(
    ctx: typer.Context,
    name: str = NameArg,
    project: str = ProjectOpt,
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Show one deployment (-o json|yaml for its full spec and status)."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        body = client.send(api.get_deployment(project, name))
    emit(c.out, body, output, lambda: deployments_table([body], show_project=False))


# The same command as `pier rollout history`, where people who think in `kubectl get` look for it.
app.command("revisions", help="List a deployment's revisions, oldest first (same as `pier rollout history`).")(
    history)


@app.command("projects")
def get_projects(
    ctx: typer.Context,
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """List projects."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        names = client.send(access.list_projects())
    emit(c.out, [{"name": n} for n in names], output, lambda: simple_table(None, ["NAME"], [[n] for n in names]))


@create_app.command("project")
def create_project(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Project name (a lowercase DNS-1123 label)."),
    remote: str = RemoteOpt,
) -> None:
    """Create a project to deploy into (`pier deploy -p NAME`)."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        client.send(access.create_project(name))
    c.out.print(f"project {name} created")
