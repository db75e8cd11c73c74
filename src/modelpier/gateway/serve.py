"""The gateway process itself (``pier gateway``): HTTP and V2 gRPC on one event loop until a signal.

The gateway serves HTTP (``gateway/http1.py``) and, unless ``gateway.grpc_port`` is 0, V2 gRPC
(``gateway/grpc_proxy.py``); ``run_gateway`` runs both and drains both on SIGTERM. ``pier up``
starts this process detached (``gateway/process.py``); run by hand, it fronts any control plane.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelpier.settings import LimitSettings

if TYPE_CHECKING:
    from modelpier.gateway.app import GatewayApp
    from modelpier.gateway.dispatch import Dispatcher
    from modelpier.gateway.verifier import InvocationVerifier
    from modelpier.spec.routing import RoutingTable

log = logging.getLogger("modelpier.gateway")


def run_gateway(app: GatewayApp, *, host: str, port: int, grpc_port: int,
                table_source: Callable[[], RoutingTable | None], verifier: InvocationVerifier | None,
                grace_s: float, batch_scheduling: bool, limits: LimitSettings | None = None) -> None:
    """Serve the gateway's HTTP ``app`` on ``port`` and, unless ``grpc_port`` is 0, V2 gRPC on ``grpc_port``,
    in one event loop, until SIGINT/SIGTERM; then both drain for up to ``grace_s``.

    ``ServiceUnavailable`` when a port cannot be bound. ``batch_scheduling``: see
    ``settings.GatewaySettings.batch_scheduling``; set before any thread starts, so all inherit it.
    ``limits``: the bounds of one request's head and body (``settings.LimitSettings``).
    """
    if batch_scheduling:
        _batch_scheduling()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_gateway(app, host=host, port=port, grpc_port=grpc_port, table_source=table_source,
                                  verifier=verifier, grace_s=grace_s, dispatcher=app.dispatcher,
                                  limits=limits or LimitSettings()))


def _batch_scheduling() -> None:
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:  # a sandbox that forbids it: serve anyway, on the default policy
        log.warning("the gateway runs on the default CPU scheduling policy: SCHED_BATCH was refused (%s)", exc)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    return uvloop.new_event_loop


async def _serve_gateway(app: GatewayApp, *, host: str, port: int, grpc_port: int,
                         table_source: Callable[[], RoutingTable | None], verifier: InvocationVerifier | None,
                         grace_s: float, dispatcher: Dispatcher, limits: LimitSettings) -> None:
    from modelpier.gateway.grpc_proxy import start_grpc_gateway
    from modelpier.gateway.http1 import GatewayHttpServer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.startup()
    http = GatewayHttpServer(app, max_headers=limits.max_headers, head_timeout_s=limits.head_timeout_s,
                             body_timeout_s=limits.body_timeout_s)
    grpc = None
    try:
        await http.start(host, port)
        if grpc_port:
            grpc = await start_grpc_gateway(dispatcher, table_source, host=host, port=grpc_port, verifier=verifier)
        log.info("the gateway serves HTTP on %s:%d%s", host, http.port,
                 f" and V2 gRPC on {host}:{grpc.port}" if grpc is not None else "")
        await stop.wait()
        log.info("stopping the gateway: requests in flight have %gs to finish", grace_s)
    finally:
        await asyncio.gather(http.stop(grace_s), *([grpc.stop(grace_s)] if grpc is not None else []),
                             return_exceptions=True)
        await app.shutdown()
