"""The ``pier`` command: Typer groups by noun; one place turns errors into messages and exit codes."""

from __future__ import annotations

import sys

import typer

from modelpier import __version__
from modelpier.cli import auth, config, deploy, get, models, predictions, rollout
from modelpier.cli import build as build_cmds  # OCI images (issue 17)
from modelpier.cli import server as server_cmds
from modelpier.cli.bench import bench  # load testing (issue 5)
from modelpier.cli.context import CliContext
from modelpier.cli.gateway import gateway  # platform processes (issue 4)
from modelpier.cli.operator import operator  # Kubernetes (issue 7)
from modelpier.cli.predict import predict  # the Python client from the shell (issue 19)
from modelpier.cli.render import render_cmd  # Kubernetes (issue 7)
from modelpier.cli.serve import serve
from modelpier.errors import PierError, exit_code
from modelpier.settings import load_settings

app = typer.Typer(
    name="pier",
    help="modelpier: register models, serve them, deploy them. Settings come from PIER_* variables "
         "and $PIER_HOME/config.yaml (see `pier config show`).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(config.app, name="config")
app.add_typer(build_cmds.app, name="build")  # OCI images (issue 17)
app.command("serve")(serve)
app.command("server")(server_cmds.server)
app.command("up")(server_cmds.up)
app.command("down")(server_cmds.down)  # platform processes (issue 4)
app.command("gateway")(gateway)  # platform processes (issue 4)
# Removed (issue 16); says so and where its work went, whatever options an old manifest passes.
app.command("operator", hidden=True, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(
    operator)
app.command("render")(render_cmd)  # Kubernetes (issue 7)
# Deployments, kubectl-style: verbs first, the API underneath.
app.command("login")(auth.login)  # access (issue 6)
app.add_typer(auth.token_app, name="token")
app.add_typer(auth.user_app, name="user")
app.add_typer(auth.project_app, name="project")
app.add_typer(auth.quota_app, name="quota")
app.command("audit")(auth.audit)
app.command("deploy")(deploy.deploy)
app.add_typer(get.app, name="get")
app.command("describe")(deploy.describe)
app.add_typer(deploy.delete_app, name="delete")
app.add_typer(get.create_app, name="create")
app.add_typer(rollout.app, name="rollout")
app.add_typer(predictions.logs_app, name="logs")  # `pier logs NAME` and `pier logs predictions NAME`
app.command("bench")(bench)  # load testing (issue 5)
app.command("predict")(predict)  # the Python client from the shell (issue 19)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelpier {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = CliContext(settings=load_settings())


def main() -> None:
    try:
        app(standalone_mode=True)
    except PierError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
