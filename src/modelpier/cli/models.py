"""``pier models ...``: the registry from the command line, local by default, remote with --remote."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from modelpier.cli.context import CliContext, get_context
from modelpier.cli.output import OutputFormat, emit, human_bytes, simple_table
from modelpier.errors import InvalidInput
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.registry.wire import VersionBody
from modelpier.sdk.control_api import ControlClient
from modelpier.sdk.control_api.transfer import ProgressFactory, UploadJournal, pull, push
from modelpier.spec.names import ModelRef

app = typer.Typer(help="Register, inspect and move model versions.", no_args_is_help=True)

REMOTE_HELP = "URL of a modelpier control plane (e.g. http://127.0.0.1:8600); default: the local store."
OutputOpt = typer.Option(OutputFormat.table, "--output", "-o", help="table for people, json or yaml for scripts.")
RemoteOpt = typer.Option(None, "--remote", "-r", help=REMOTE_HELP)


def _key_values(pairs: list[str] | None, what: str, convert: Callable[[str], Any] = str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} {pair!r} must look like key=value")
        try:
            out[key] = convert(value)
        except ValueError:
            raise InvalidInput(f"{what} {pair!r}: {value!r} is not a number") from None
    return out


def _read_structured(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    if not path.is_file():
        raise InvalidInput(f"{what} file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{what} file {path} is neither JSON nor YAML: {exc}") from exc


def _version_table(v: VersionBody) -> Table:
    t = Table(title=f"{v.ref}", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    sig = v.signature
    rows: list[tuple[str, str]] = [
        ("flavor", v.flavor.value), ("aliases", ", ".join(v.aliases) or "-"),
        ("digest", v.digest), ("size", human_bytes(v.size)),
        ("created", f"{v.created_at:%Y-%m-%d %H:%M:%S} by {v.created_by}"), ("source", v.source or "-"),
        ("description", v.description or "-"),
        ("inputs", "; ".join(f"{i.name} {i.datatype} {list(i.shape)}" for i in sig.inputs) if sig else "-"),
        ("outputs", "; ".join(f"{o.name} {o.datatype} {list(o.shape)}" for o in sig.outputs) if sig else "-"),
        ("tags", ", ".join(f"{k}={val}" for k, val in v.tags.items()) or "-"),
        ("metrics", ", ".join(f"{k}={val:g}" for k, val in v.metrics.items()) or "-"),
        ("params", ", ".join(f"{k}={val}" for k, val in v.params.items()) or "-"),
        ("files", ", ".join(f"{f.path} ({human_bytes(f.size)})" for f in v.files)),
        ("image", v.image or "-"),
    ]
    env = v.environment
    if env:
        rows.append(("environment", ", ".join(
            f"{k}={val}" for k, val in env.items() if k != "requirements" and not isinstance(val, dict | list))))
        reqs = env.get("requirements") or []
        rows.append(("requirements", " ".join(str(r) for r in reqs) or "-"))
    lock = v.to_domain().lock
    rows.append(("lock", f"{lock.digest[:19]}… python {lock.python}, {len(lock.packages)} pins from "
                 f"{lock.source.value}{', hashed' if lock.hashed else ''}: {' '.join(lock.pins)}"
                 if lock else "- (pier models lock REF --requirements FILE)"))
    for k, val in rows:
        t.add_row(k, val)
    return t


RequirementsOpt = typer.Option(
    None, "--requirements", "-r",
    help="Requirements file of exact pins (name==version, optional --hash=sha256:...) to lock the version to.")


@app.command("list")
def list_models(
    ctx: typer.Context,
    search: str = typer.Option(None, "--search", "-s", help="Only models whose name contains this."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """List registered models with their latest version and aliases."""
    c = get_context(ctx)
    with c.registry_access(remote) as reg:
        models = reg.list_models(search)
    emit(c.out, models, output, lambda: simple_table(
        None, ["NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED", "DESCRIPTION"],
        [[m.name, m.latest_version or "-", m.version_count,
          ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())) or "-",
          f"{m.updated_at:%Y-%m-%d %H:%M}", m.description] for m in models]) if models else "no models")


@app.command("get")
def get(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name (latest), name:3 or name:alias."),
    versions: bool = typer.Option(False, "--versions", help="List every version of the model instead."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Show one version: flavor, signature, metrics, lineage, environment, digest."""
    c = get_context(ctx)
    parsed = ModelRef.parse(ref)
    with c.registry_access(remote) as reg:
        if versions:
            listed = reg.list_versions(parsed.name)
            emit(c.out, listed, output, lambda: simple_table(
                parsed.name, ["VERSION", "FLAVOR", "ALIASES", "SIZE", "CREATED", "BY"],
                [[v.version, v.flavor.value, ", ".join(v.aliases), human_bytes(v.size),
                  f"{v.created_at:%Y-%m-%d %H:%M}", v.created_by] for v in listed]))
            return
        version = reg.get_version(parsed)
    emit(c.out, version, output, lambda: _version_table(version))


@app.command("save")
def save(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Model file or folder: model.joblib, model.onnx, model.pt, "
                                "an xgboost/lightgbm file, an MLflow or python-flavor folder."),
    name: str = typer.Option(..., "--name", "-n", help="Model name (a lowercase DNS-1123 label)."),
    flavor: str = typer.Option(None, "--flavor", "-f", help="Force the flavor instead of guessing."),
    signature: Path = typer.Option(None, "--signature", help="JSON/YAML file: {inputs: [...], outputs: [...]}"),
    input_example: Path = typer.Option(None, "--input-example", help="JSON file with example input rows."),
    tag: list[str] = typer.Option(None, "--tag", "-t", help="key=value; repeatable."),
    metric: list[str] = typer.Option(None, "--metric", "-m", help="key=number; repeatable."),
    description: str = typer.Option("", "--description", "-d"),
    requirements: Path = RequirementsOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Register a model file or folder from disk as the next version of NAME (local store).

    The version's environment lock pins what this environment has installed of the flavor's
    framework and its dependencies, unless --requirements gives the pins."""
    from modelpier.sdk.api import save_model

    c = get_context(ctx)
    if not path.exists():
        raise InvalidInput(f"model path {path} does not exist")
    version = save_model(
        name, path, flavor=flavor, signature=_read_structured(signature, "signature"),
        input_example=_read_structured(input_example, "input example"),
        tags=_key_values(tag, "tag"), metrics=_key_values(metric, "metric", float),
        description=description, requirements=requirements, settings=c.settings)
    body = VersionBody.of(version)
    emit(c.out, body, output, lambda: f"saved [bold]{version.ref}[/] ({version.flavor}, "
                                      f"{human_bytes(version.size)}, {version.digest[:19]}…)")


@app.command("import-mlflow")
def import_mlflow_cmd(
    ctx: typer.Context,
    path: str = typer.Argument(..., help="An MLflow model folder (with an MLmodel file) or file:// URI."),
    name: str = typer.Option(..., "--name", "-n", help="Model name to register it under."),
    description: str = typer.Option("", "--description", "-d"),
    requirements: Path = RequirementsOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Register an MLflow model (flavors, signature, input example); mlflow need not be installed.

    The version's environment lock comes from the model's requirements.txt and python_env.yaml
    (or --requirements)."""
    from modelpier.sdk.api import import_mlflow

    c = get_context(ctx)
    version = import_mlflow(path, name, description=description, requirements=requirements, settings=c.settings)
    emit(c.out, VersionBody.of(version), output,
         lambda: f"imported [bold]{version.ref}[/] from {path} ({human_bytes(version.size)})")


@app.command("lock")
def lock(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name (latest), name:3 or name:alias."),
    requirements: Path = RequirementsOpt,
    python: str = typer.Option(None, "--python", help="Python version the pins are for (default: this one's)."),
    remote: str = RemoteOpt,
    output: OutputFormat = OutputOpt,
) -> None:
    """Re-lock a version: record the exact pins its environment is built from.

    With --requirements, the file's pins (name==version, with --hash=sha256:... where given; e.g.
    from `uv pip compile --generate-hashes`). Without, what this environment has installed of the
    version's framework and its dependencies (an MLflow model: its requirements.txt, pinned)."""
    from modelpier.registry.lock import LockSource, parse_requirements
    from modelpier.runtimes.locking import lock_saving_environment
    from modelpier.sdk.mlflow_import import lock_mlflow_requirements

    c = get_context(ctx)
    parsed = ModelRef.parse(ref)
    with c.registry_access(remote) as reg:
        if requirements is not None:
            if not requirements.is_file():
                raise InvalidInput(f"requirements file {requirements} does not exist")
            new_lock = parse_requirements(requirements.read_text(), python=python or platform.python_version(),
                                          source=LockSource.USER)
        else:
            current = reg.get_version(parsed)
            if current.flavor.value == "mlflow":
                new_lock = lock_mlflow_requirements([str(r) for r in current.environment.get("requirements") or ()],
                                                    python or platform.python_version())
            else:
                new_lock = lock_saving_environment(current.flavor)
        version = reg.set_lock(parsed, new_lock)
    emit(c.out, version, output, lambda: f"locked [bold]{version.ref}[/]: {new_lock.digest[:19]}… "
                                         f"({len(new_lock.packages)} pins, python {new_lock.python_minor})")


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="e.g. production, staging."),
    version: int = typer.Argument(None, help="Version the alias should point at (omit with --delete)."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
    remote: str = RemoteOpt,
) -> None:
    """Point ALIAS of model NAME at VERSION (moving it if it exists), or delete it."""
    c = get_context(ctx)
    with c.registry_access(remote) as reg:
        if delete:
            reg.delete_alias(name, alias_name)
            c.out.print(f"deleted alias {name}:{alias_name}")
            return
        if version is None:
            raise InvalidInput("give the VERSION the alias should point at, or --delete")
        moved = reg.set_alias(name, alias_name, version)
    c.out.print(f"{name}:{alias_name} → version {moved.version}")


@app.command("tag")
def tag_cmd(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name (tags the model) or name:3 / name:alias (tags a version)."),
    pairs: list[str] = typer.Argument(None, help="key=value pairs to set."),
    delete: list[str] = typer.Option(None, "--delete", help="Tag key to remove; repeatable."),
    remote: str = RemoteOpt,
) -> None:
    """Set or remove key/value tags on a model or a version."""
    c = get_context(ctx)
    parsed = ModelRef.parse(ref)
    to_set = _key_values(pairs, "tag")
    if not to_set and not delete:
        raise InvalidInput("give key=value pairs to set or --delete KEY")
    with c.registry_access(remote) as reg:
        for key, value in to_set.items():
            reg.set_tag(parsed, key, value)
        for key in delete or []:
            reg.delete_tag(parsed, key)
    c.out.print(f"tagged {ref}")


@app.command("delete")
def delete_cmd(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name deletes the model and all versions; name:3 one version."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    remote: str = RemoteOpt,
) -> None:
    """Delete a model or one version (blobs no other version uses are removed too)."""
    c = get_context(ctx)
    parsed = ModelRef.parse(ref)
    what = f"model {parsed.name} and all its versions" if parsed.version is None and parsed.alias is None \
        else f"version {ref}"
    if not yes and not typer.confirm(f"delete {what}?"):
        raise typer.Exit(1)
    with c.registry_access(remote) as reg:
        reg.delete(parsed)
    c.out.print(f"deleted {what}")


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[ProgressFactory]:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, disable=not enabled, transient=False) as progress:
        def factory(label: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(label, total=total)
            return lambda n: progress.advance(task, n)
        yield factory


@contextmanager
def _transfer(c: CliContext, url: str, *, show_progress: bool
              ) -> Iterator[tuple[Registry, ControlClient, ProgressFactory]]:
    """The local registry, a client of the remote, and progress bars, closed together."""
    registry = build_registry(c.settings)
    try:
        with c.control(url) as client, \
                _progress_bars(show_progress) as bars:
            yield registry, client, bars
    finally:
        registry.close()


def _remote_url(remote: str | None, default: str | None) -> str:
    url = remote or default
    if not url:
        raise InvalidInput("no remote given: use --remote URL or set PIER_REMOTE")
    return url


@app.command("push")
def push_cmd(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Local version to push: name, name:3 or name:alias."),
    remote: str = typer.Option(None, "--remote", "-r", help="Control plane URL (default: PIER_REMOTE)."),
    output: OutputFormat = OutputOpt,
) -> None:
    """Upload a local version (metadata + blobs) to a remote registry.

    Uploads are chunked and resumable: run the same push again after an interruption and only
    the missing bytes are sent. Pushing a version the remote already has is a no-op.
    """
    c = get_context(ctx)
    url = _remote_url(remote, c.settings.remote)
    with _transfer(c, url, show_progress=output is OutputFormat.table) as (registry, client, bars):
        journal = UploadJournal(c.settings.home / "uploads.json")
        local, answer = push(registry, client, ref, project=c.settings.project, journal=journal,
                             chunk_bytes=c.settings.registry.chunk_bytes, progress=bars)
    verb = "pushed" if answer.created else "already there:"
    emit(c.out, answer, output, lambda: f"{verb} {local.ref} → {url} as [bold]{answer.ref}[/]")


@app.command("pull")
def pull_cmd(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Remote version to pull: name, name:3 or name:alias."),
    remote: str = typer.Option(None, "--remote", "-r", help="Control plane URL (default: PIER_REMOTE)."),
    output: OutputFormat = OutputOpt,
) -> None:
    """Download a remote version into the local store (verified against its digest).

    The pulled version keeps its number, so it is served as the version the remote names; a local
    version with the same digest is returned instead, and one with that number but other content
    is refused.
    """
    c = get_context(ctx)
    url = _remote_url(remote, c.settings.remote)
    with _transfer(c, url, show_progress=output is OutputFormat.table) as (registry, client, bars):
        version, created = pull(registry, client, ref, project=c.settings.project,
                                chunk_bytes=c.settings.registry.chunk_bytes, progress=bars)
    emit(c.out, VersionBody.of(version), output, lambda: (
        f"pulled {ref} from {url} as [bold]{version.ref}[/]" if created
        else f"already here: {ref} is local {version.ref}"))

