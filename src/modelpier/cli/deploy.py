"""``pier deploy``, ``pier describe``, ``pier delete …`` and ``pier logs``: deployments through the API."""

from __future__ import annotations

import contextlib
from enum import StrEnum
from pathlib import Path

import typer

from modelpier.cli.context import CliContext, get_context
from modelpier.cli.deploy_ref import RefDeploy, fresh_document, plan_ref_deploy
from modelpier.cli.deploy_support import (
    DEFAULT_PROJECT,
    NameArg,
    OutputOpt,
    ProjectOpt,
    RemoteOpt,
    deployment_client,
    project_of,
    read_document,
    wait_for_rollout,
    wire_document,
)
from modelpier.cli.deploy_view import describe as describe_page
from modelpier.cli.output import OutputFormat, emit
from modelpier.control.api import calls as api
from modelpier.control.api.canary_wire import CanaryBody
from modelpier.control.api.traffic_wire import TrafficBody
from modelpier.control.deployments.logs import DEFAULT_TAIL
from modelpier.errors import InvalidInput, NotFound, PierError
from modelpier.sdk.control_api import ControlClient, access
from modelpier.spec.deployment import ModelDeployment
from modelpier.spec.names import ModelRef

delete_app = typer.Typer(help="Delete deployments or projects.", no_args_is_help=True)


def _plan_from_ref(client: ControlClient, ref: str, name: str, project: str, *, replicas: int | None,
                   follow_alias: bool, replace: bool) -> RefDeploy:
    """``pier deploy REF``: a new one-predictor deployment, or only the model changed on an existing one."""
    try:
        existing = client.send(api.get_deployment(project, name)).spec
    except NotFound:
        existing = None
    running = False
    if existing is not None and not replace:
        with contextlib.suppress(NotFound):
            running = not client.send(api.canary(project, name)).done
    return plan_ref_deploy(ref, name, project, existing, replicas=replicas, follow_alias=follow_alias,
                           replace=replace, canary_running=running)


class Backend(StrEnum):
    local = "local"
    kubernetes = "kubernetes"


def _apply_to_kubernetes(c: CliContext, document: ModelDeployment, namespace: str, kubeconfig: str | None, *,
                         wait: bool, output: OutputFormat) -> None:
    if wait:
        raise InvalidInput("--wait follows the local control plane; on Kubernetes watch the resource with "
                           f"`kubectl get md {document.metadata.name} -n {namespace} -w`")
    try:
        from modelpier.backends.kubernetes.apply import apply_deployment
    except ImportError as exc:
        raise InvalidInput(f"--backend kubernetes needs the Kubernetes extra: pip install 'modelpier[kubernetes]' "
                           f"({exc})") from exc
    stored = apply_deployment(document, kubeconfig, namespace=namespace)
    meta = stored.get("metadata", {})
    emit(c.out, stored, output, lambda: (
        f"modeldeployment.modelpier.io/{meta.get('name')} applied in namespace {meta.get('namespace')} "
        f"(generation {meta.get('generation')}); the control plane in the cluster rolls it out"))


def deploy(
    ctx: typer.Context,
    ref: str = typer.Argument(None, metavar="[MODEL_REF]",
                              help="Deploy this model reference (iris:production) with a spec written for you, "
                                   "instead of -f."),
    file: Path = typer.Option(None, "--file", "-f", help="ModelDeployment file (YAML or JSON; '-' for stdin)."),
    project: str = typer.Option(None, "--project", "-p",
                                help="Project; default: metadata.project in the file, else 'default'."),
    name: str = typer.Option(None, "--name", "-n", help="Deployment name with MODEL_REF (default: the model's)."),
    replicas: int = typer.Option(None, "--replicas", min=0,
                                 help="Replicas with MODEL_REF (default: 1 for a new deployment, else unchanged)."),
    follow_alias: bool = typer.Option(False, "--follow-alias", help="With MODEL_REF name:alias: roll out "
                                                                    "whenever the alias moves."),
    replace: bool = typer.Option(False, "--replace",
                                 help="With MODEL_REF on an existing deployment: write a new one-predictor spec "
                                      "over it (default: change only the model, keep the rest)."),
    wait: bool = typer.Option(False, "--wait/--no-wait", help="Block until the revision is Ready; fail with "
                                                              "the reason if the rollout fails."),
    timeout: float = typer.Option(300, "--timeout", min=1, help="Seconds --wait waits at most."),
    backend: Backend = typer.Option(Backend.local, "--backend", "-b",
                                    help="local: through the control plane (--remote); kubernetes: create/update "
                                         "the ModelDeployment custom resource with your kubeconfig."),
    kubeconfig: str = typer.Option(None, "--kubeconfig", help="With --backend kubernetes: the kubeconfig file "
                                                              "(default: $KUBECONFIG or ~/.kube/config)."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Create or update a deployment from a ModelDeployment file (or a model reference).

    Applying the same spec again changes nothing; a changed spec, or an alias that now resolves
    to another version, makes a new revision that the reconciler rolls out. With MODEL_REF on an
    existing deployment only its model changes (replicas, followAlias and the rest are kept) and the
    command says what changed; it refuses a deployment with several predictors or a running canary
    unless --replace.
    """
    c = get_context(ctx)
    if (file is None) == (ref is None):
        raise InvalidInput("give either -f FILE or a MODEL_REF (e.g. `pier deploy iris:production`)")
    changes: tuple[str, ...] = ()
    if file is not None:
        document = read_document(file)
        target = project_of(document, project)
    else:
        target = project or DEFAULT_PROJECT
        document = fresh_document(ref, name or ModelRef.parse(ref).name, project,
                                  1 if replicas is None else replicas, follow_alias)
    if backend is Backend.kubernetes:
        _apply_to_kubernetes(c, document, target, kubeconfig, wait=wait, output=output)
        return
    with deployment_client(c, remote) as client:
        if ref is not None:
            planned = _plan_from_ref(client, ref, document.metadata.name, target, replicas=replicas,
                                     follow_alias=follow_alias, replace=replace)
            document, changes = planned.document, planned.changes
        result = client.send(api.apply(target, document.metadata.name, wire_document(document)))
        rev = result.revision
        progress = None
        if wait:
            progress = wait_for_rollout(client, target, document.metadata.name, rev.number, rev.created_at,
                                        timeout=timeout, err=c.err)
            latest = client.send(api.get_deployment(target, document.metadata.name))
            result = result.model_copy(update={"deployment": latest})
    versions = ", ".join(f"{p}={v}" for p, v in sorted(rev.resolved.items()))
    verb = "created" if result.created else "unchanged"
    url = result.deployment.status.url
    changed = f"\nchanged: {'; '.join(changes)}" if changes else ""
    emit(c.out, result, output, lambda: (
        f"deployment [bold]{target}/{document.metadata.name}[/]: revision {rev.number} {verb} ({versions})" + changed
        + (f"\n{progress.message}" if progress else "") + (f"\nendpoint: {url}" if url else "")))


def describe(
    ctx: typer.Context,
    target: list[str] = typer.Argument(..., metavar="[deployment] NAME", help="The deployment to describe."),
    project: str = ProjectOpt,
    events: int = typer.Option(20, "--events", min=1, max=500, help="How many recent events to show."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Show a deployment: spec summary, predictors with versions and weights, conditions, last events."""
    if len(target) == 2 and target[0] in ("deployment", "deployments", "deploy", "md"):
        target = target[1:]
    if len(target) != 1:
        raise InvalidInput("usage: pier describe [deployment] NAME")
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        body = client.send(api.get_deployment(project, target[0]))
        recent = client.send(api.events(project, target[0], limit=events))
        traffic, canary = observed_traffic(client, project, target[0])
    if output is OutputFormat.table:
        c.out.print(describe_page(body, recent, traffic, canary))
        return
    extra = {"traffic": traffic.model_dump(mode="json", by_alias=True) if traffic else None,
             "canary": canary.model_dump(mode="json", by_alias=True) if canary else None}
    emit(c.out, {**body.model_dump(mode="json", by_alias=True), **extra,
                 "events": [e.model_dump(mode="json", by_alias=True) for e in recent]}, output, lambda: "")


def observed_traffic(client: ControlClient, project: str, name: str) -> tuple[TrafficBody | None,
                                                                                  CanaryBody | None]:
    """The last minute of traffic and the latest canary, when the control plane has them (an older one
    answers 404 for both routes: describe still shows the rest)."""
    traffic = canary = None
    with contextlib.suppress(PierError):
        traffic = client.send(api.traffic(project, name, 60.0))
    with contextlib.suppress(PierError):
        canary = client.send(api.canary(project, name))
    return traffic, canary


@delete_app.command("deployment")
def delete_deployment(
    ctx: typer.Context,
    name: str = NameArg,
    project: str = ProjectOpt,
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Delete a deployment: its replicas are stopped, then its record and history go."""
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        body = client.send(api.delete_deployment(project, name))
    emit(c.out, body, output, lambda: f"deployment {project}/{name}: deletion requested")


@delete_app.command("project")
def delete_project(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Project name."),
    remote: str = RemoteOpt,
) -> None:
    """Delete an empty project."""
    c = get_context(ctx)
    if name == DEFAULT_PROJECT:
        raise InvalidInput(f"project {DEFAULT_PROJECT!r} cannot be deleted")
    with deployment_client(c, remote) as client:
        client.send(access.delete_project(name))
    c.out.print(f"project {name} deleted")


def logs(
    ctx: typer.Context,
    name: str = NameArg,
    project: str = ProjectOpt,
    predictor: str = typer.Option(None, "--predictor", help="Only this predictor's replicas."),
    tail: int = typer.Option(DEFAULT_TAIL, "--tail", min=1, max=10_000, help="Last lines per replica."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Print the last log lines of a deployment's replicas, from the control plane.

    `pier logs NAME` is short for `pier logs replicas NAME`.
    """
    c = get_context(ctx)
    with deployment_client(c, remote) as client:
        found = client.send(api.logs(project, name, predictor=predictor, tail=tail))
    if output is not OutputFormat.table:
        emit(c.out, found, output, lambda: "")
        return
    if not found.lines:
        c.err.print("no replica has written a log line yet")
    for line in found.lines:
        typer.echo(line)
