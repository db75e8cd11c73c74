"""``pier server`` (the control plane over the backend ``platform.backend`` names), ``pier up`` (the same
control plane over local replicas, with a gateway and the example model) and ``pier down`` (stop what
they left running: the control plane, the gateway, the replicas). Both run ``cli/platform.py``."""

from __future__ import annotations

import logging
from enum import StrEnum

import typer

from modelpier.cli.context import get_context


class ServerBackend(StrEnum):
    """The values of ``platform.backend`` (``backends/factory.py``)."""

    local = "local"
    kubernetes = "kubernetes"
    none = "none"


def server(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Interface to bind (default: control.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (default: control.port, 8600)."),
    backend: ServerBackend = typer.Option(None, "--backend",
                                          help="Where replicas run (default: platform.backend, local): local "
                                               "child processes, Kubernetes pods, or none (the API and registry "
                                               "only)."),
) -> None:
    """Run the control plane: the API (registry, deployments; OpenAPI at /docs), the reconciler over the
    backend, and the routing table a `pier gateway --control URL` serves from."""
    import asyncio

    from modelpier.cli.platform import run_server
    from modelpier.registry.factory import build_registry

    c = get_context(ctx)
    settings = c.settings
    if backend is not None:
        chosen_platform = settings.platform.model_copy(update={"backend": backend.value})
        settings = settings.model_copy(update={"platform": chosen_platform})
    host = host or settings.control.host
    port = settings.control.port if port is None else port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe otherwise

    def ready(url: str) -> None:
        c.out.print(f"modelpier control plane on [bold]{url}[/] (backend: {settings.platform.backend})")
        c.out.print(f"  API docs:  {url}/docs")
        c.out.print(f"  models:    curl {url}/api/v1/models")
        c.out.print(f"  CLI:       pier models list --remote {url}")
        c.out.print(f"  gateway:   pier gateway --control {url}")

    asyncio.run(run_server(settings, build_registry(settings), host=host, port=port, on_ready=ready))


def up(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Interface of the API (default: control.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port of the API (default: control.port, 8600)."),
    gateway_port: int = typer.Option(None, help="TCP port of the gateway (default: gateway.port, 8700)."),
    gateway_grpc_port: int = typer.Option(None, "--gateway-grpc-port", min=0, max=65535,
                                          help="TCP port of the gateway's V2 gRPC service (default: "
                                               "gateway.grpc_port, 8701; 0 turns gRPC off)."),
    example: bool = typer.Option(True, "--example/--no-example",
                                 help="Register the iris example model and deploy it as default/iris."),
) -> None:
    """Run the platform on embedded defaults: control plane, gateway, reconciler and local replicas.

    Every port is checked before anything is created: a busy one stops `pier up` with one line naming
    the port, the process holding it and the flag that picks another."""
    import asyncio

    from modelpier.cli.credentials import save_credentials
    from modelpier.cli.platform import EXAMPLE_DEPLOYMENT, EXAMPLE_PROJECT, PlatformUrls, run_platform
    from modelpier.cli.preflight import check_platform
    from modelpier.registry.factory import build_registry

    c = get_context(ctx)
    settings = c.settings

    def say(text: str) -> None:
        c.out.print(text, soft_wrap=True)  # URLs and the curl line must stay copyable: no wrapping

    chosen = {key: value for key, value in (("port", gateway_port), ("grpc_port", gateway_grpc_port))
              if value is not None}
    if chosen:
        settings = settings.model_copy(update={"gateway": settings.gateway.model_copy(update=chosen)})
    host = host or settings.control.host
    port = settings.control.port if port is None else port
    check_platform(settings, host, port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = build_registry(settings)
    if example:
        from modelpier.examples.iris import ensure_example_model

        version = ensure_example_model(registry, settings)
        say(f"example model registered: [bold]{version.model}:{version.version}[/] (alias production)")

    def ready(urls: PlatformUrls) -> None:
        say(f"modelpier is up: API on [bold]{urls.api}[/], gateway on [bold]{urls.gateway}[/] ({urls.gateway_note})")
        say(f"  API docs:  {urls.api}/docs")
        if example:
            endpoint = f"{urls.gateway}/{EXAMPLE_PROJECT}/{EXAMPLE_DEPLOYMENT}"
            body = '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
            say(f"  endpoint:  {endpoint}  (deploying iris:production, ready in a few seconds)")
            say(f"  status:    pier describe {EXAMPLE_DEPLOYMENT}   (the API needs a token: "
                "curl -H 'authorization: Bearer pier_...')")
            say(f"  predict:   curl -s {endpoint}/v2/models/iris/infer -H 'content-type: application/json' "
                        f"-d '{body}'")
        say("  Ctrl-C stops the control plane; the gateway and replicas keep serving and the next `pier up` "
            "adopts them; `pier down` stops everything")

    def remember_admin_token(token: str) -> None:
        # The quick start stays one command: the CLI on this machine is logged in as the admin.
        path = save_credentials(f"http://{host}:{port}", token)
        say(f"created the platform admin; its API token, shown once (saved for the CLI in {path}):\n  {token}")

    asyncio.run(run_platform(settings, registry, host=host, port=port, on_ready=ready, with_example=example,
                             announce_admin_token=remember_admin_token))


def down(
    ctx: typer.Context,
    grace_s: float = typer.Option(None, "--grace-s", min=0,
                                  help="Seconds each process may take to drain after SIGTERM before SIGKILL "
                                       "(default: platform.stop_grace_s, 30)."),
) -> None:
    """Stop the platform `pier up` (or `pier server` with local replicas) started: the control plane, the
    gateway and every replica, by pid."""
    from modelpier.backends.local import records
    from modelpier.gateway.process import GATEWAY_FILE, PLATFORM_FILE, load_record, running, stop_processes

    c = get_context(ctx)
    settings = c.settings
    grace = settings.platform.stop_grace_s if grace_s is None else grace_s
    home = settings.home
    # The control plane first, or its reconciler would start again what is stopped next; the gateway
    # next, so traffic stops before the replicas do.
    for label, path, wait in (("control plane", home / PLATFORM_FILE, max(grace, 15.0)),
                              ("gateway", home / GATEWAY_FILE, grace)):
        record = load_record(path)
        if record is not None and running(record.pid, record.argv):
            killed = stop_processes([record.pid], wait, group=label == "gateway")
            c.out.print(f"stopped the {label} (pid {record.pid}{', SIGKILL' if killed else ''})")
        path.unlink(missing_ok=True)
    state = home / "replicas" / "state.json"
    replicas = [r for r in records.load(state) if running(r.pid, r.argv)]
    if replicas:
        killed = stop_processes([r.pid for r in replicas], grace)
        c.out.print(f"stopped {len(replicas)} replica(s)" + (f" ({len(killed)} with SIGKILL)" if killed else ""))
    if state.exists():
        records.save(state, [])
    c.out.print("modelpier is down")
