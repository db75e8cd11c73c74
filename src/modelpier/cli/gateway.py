"""``pier gateway --control URL``: the gateway as its own long-lived process.

Serves ``/{project}/{deployment}/...`` from the routing table it polls from the control plane
(``GET /api/v1/routing``) and keeps serving the last table while the control plane is down; V2
gRPC on a second port (``--grpc-port``), the deployment named by request metadata. ``pier
up`` starts it detached (see ``gateway/process.py``); run by hand, it fronts any control plane.
"""

from __future__ import annotations

import logging

import typer

from modelpier.cli.context import get_context


def gateway(
    ctx: typer.Context,
    control: str = typer.Option(..., "--control", help="Base URL of the control plane, e.g. http://127.0.0.1:8600."),
    host: str = typer.Option(None, help="Interface to bind (default: gateway.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (default: gateway.port, 8700)."),
    grpc_port: int = typer.Option(None, "--grpc-port", min=0, max=65535,
                                  help="TCP port of the V2 gRPC service, where metadata `x-pier-deployment: "
                                       "PROJECT/NAME` picks the deployment (default: gateway.grpc_port, "
                                       "8701; 0 turns gRPC off). See docs/gateway-grpc.md."),
    poll_interval_s: float = typer.Option(None, "--poll-interval-s", min=0.01,
                                          help="Seconds between polls of the routing table (default: "
                                               "gateway.poll_interval_s, 0.5)."),
) -> None:
    """Run the gateway: the front door of every deployment, fed by the control plane's routing table."""
    from modelpier.gateway.compose import build_gateway, standard_parts
    from modelpier.gateway.serve import run_gateway
    from modelpier.gateway.table_client import RoutingTableClient

    settings = get_context(ctx).settings
    gw = settings.gateway
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll and proxied request otherwise
    token = settings.token.get_secret_value() if settings.token else None
    table = RoutingTableClient(control, interval_s=poll_interval_s or gw.poll_interval_s, token=token)
    parts = standard_parts(settings, control, token)
    app = build_gateway(table, parts)
    run_gateway(app, host=host or gw.host, port=gw.port if port is None else port,
                grpc_port=gw.grpc_port if grpc_port is None else grpc_port,
                table_source=lambda: table.get() if table.synced else None, verifier=parts.verifier,
                grace_s=settings.platform.stop_grace_s, batch_scheduling=gw.batch_scheduling,
                limits=settings.limits)
