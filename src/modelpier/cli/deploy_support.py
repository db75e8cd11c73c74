"""What the deployment commands share: options, the API client, reading spec files, waiting.

Deployment commands always talk to a control plane over HTTP (``--remote``, else ``PIER_REMOTE``,
else the local one on ``control.port``), never to the database, so the API stays the one place
where specs are validated and revisions are made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from rich.console import Console

from modelpier.cli.context import CliContext
from modelpier.cli.output import OutputFormat
from modelpier.control.api import calls as api
from modelpier.control.deployments.progress import RolloutProgress, rollout_progress
from modelpier.errors import InvalidInput, InvalidSpec, ServiceUnavailable
from modelpier.sdk.control_api import ControlClient
from modelpier.spec.deployment import ModelDeployment, parse_deployment

DEFAULT_PROJECT = "default"
# Deployment calls answer from the database: no long transfers, so a stuck server is seen sooner.
DEPLOY_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

OutputOpt = typer.Option(OutputFormat.table, "--output", "-o", help="table for people, json or yaml for scripts.")
RemoteOpt = typer.Option(
    None, "--remote", "-r",
    help="URL of the control plane; default: PIER_REMOTE, else http://127.0.0.1:<control.port>.")
ProjectOpt = typer.Option(DEFAULT_PROJECT, "--project", "-p", help="Project (tenant) of the deployment.")
NameArg = typer.Argument(..., help="Deployment name.")


def remote_url(c: CliContext, remote: str | None) -> str:
    return remote or c.settings.remote or f"http://127.0.0.1:{c.settings.control.port}"


@contextmanager
def deployment_client(c: CliContext, remote: str | None) -> Iterator[ControlClient]:
    """The API client of the control plane ``--remote`` (else settings) names."""
    with c.control(remote_url(c, remote), timeout=DEPLOY_TIMEOUT) as client:
        yield client


def read_document(path: Path) -> ModelDeployment:
    """Read and validate a ModelDeployment file (YAML or JSON) before anything is sent."""
    if str(path) != "-" and not path.is_file():
        raise InvalidInput(f"deployment file {path} does not exist")
    text = typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text()
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise InvalidSpec(f"{path} is neither YAML nor JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"{path} must hold one ModelDeployment mapping (apiVersion, kind, metadata, spec)")
    try:
        return parse_deployment(data)
    except InvalidSpec as exc:
        raise InvalidSpec(f"{path}: {exc.message}", details=exc.details) from None


def project_of(document: ModelDeployment, option: str | None) -> str:
    """The project to apply to: ``--project``, else ``metadata.project``, else ``default``."""
    named = document.metadata.project
    if option and named and option != named:
        raise InvalidInput(f"--project {option!r} does not match metadata.project {named!r} in the file")
    return option or named or DEFAULT_PROJECT


def wire_document(document: ModelDeployment) -> dict[str, Any]:
    return document.model_dump(mode="json", by_alias=True, exclude_none=True)


def wait_for_rollout(client: ControlClient, project: str, name: str, revision: int, since: datetime, *,
                     timeout: float, err: Console, poll: float = 0.5) -> RolloutProgress:
    """Poll the status until the revision is Ready (returned) or failed / timed out (raised)."""
    deadline = time.monotonic() + timeout
    last = ""
    with err.status(f"waiting for {project}/{name} revision {revision}…") as spinner:
        while True:
            progress = rollout_progress(client.send(api.status(project, name)), revision, since)
            if progress.phase == "ready":
                return progress
            if progress.phase == "failed":
                raise ServiceUnavailable(f"rollout of {project}/{name} revision {revision} failed: {progress.message} "
                                         f"(see `pier describe {name} -p {project}`)")
            if progress.message != last:
                spinner.update(progress.message)
                last = progress.message
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(f"{project}/{name} revision {revision} was not ready after {timeout:g} s: "
                                         f"{progress.message}")
            time.sleep(poll)
