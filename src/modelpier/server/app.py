"""``build_server(config)``: the composition root of one model-server process.

Wires metrics, the thread pool for predictions, the model repository, the data plane and both
transports, then runs them on one uvloop event loop under uvicorn (httptools parser). Start-up:
the HTTP and gRPC ports open at once (liveness answers), models load in a worker thread, readiness
flips when all are loaded; a model that fails to load stays unready with its reason while the others
serve (when every model fails, the server stops with exit code 1). SIGTERM
or SIGINT: stop accepting, let in-flight requests finish (up to ``shutdown_grace_s``), stop gRPC
with the same grace, exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from modelpier.registry.service import Registry
from modelpier.server.config import ModelOptions, ModelSource, ServerConfig
from modelpier.server.dataplane import DataPlane
from modelpier.server.grpc import GrpcServer
from modelpier.server.http import HttpApp
from modelpier.server.http_protocol import HeadLimits, bounded_protocol, sweep
from modelpier.server.loading import LoadedModel, load_model
from modelpier.server.metrics import ServerMetrics
from modelpier.server.repository import Loader, ModelRepository
from modelpier.settings import Settings

log = logging.getLogger("modelpier.server")

# The event loop must get the GIL back quickly while a prediction thread computes; Python's
# default switch interval (5 ms) would add up to that to every request decoded meanwhile.
SWITCH_INTERVAL_S = 0.001


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class ModelServer:
    def __init__(self, config: ServerConfig, loader: Loader, on_ready: Callable[[], None] | None = None) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self._pool = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1), thread_name_prefix="predict")
        self.repository = ModelRepository(config, self.metrics, self._pool, loader)
        self.dataplane = DataPlane(self.repository, self.metrics, config.request_timeout_s, config.repository_api)
        self.grpc: GrpcServer | None = None
        if config.grpc_port is not None:
            self.grpc = GrpcServer(self.dataplane, self.metrics, config.host, config.grpc_port,
                                   max_message_bytes=config.max_body_bytes,
                                   max_request_elements=config.max_request_elements)
        self.http = HttpApp(self.dataplane, self.metrics, config.max_body_bytes, self._startup, self._shutdown,
                            max_request_elements=config.max_request_elements)
        self._on_ready = on_ready
        self._protocol = bounded_protocol(HeadLimits(
            max_headers=config.max_headers, head_timeout_s=config.head_timeout_s, body_timeout_s=config.body_timeout_s))
        self._uvicorn: uvicorn.Server | None = None
        self._loading: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    async def _startup(self) -> None:
        if self.grpc is not None:
            port = await self.grpc.start()
            log.info("gRPC (V2) on %s:%d", self.config.host, port)
        self._sweeper = asyncio.create_task(sweep(self._protocol), name="408 for slow requests")
        self._loading = asyncio.create_task(self._load())

    async def _load(self) -> None:
        try:
            await self.repository.load_all()
        except Exception as exc:
            self.failure = exc
            log.error("cannot serve: %s", getattr(exc, "message", None) or exc,
                      exc_info=not hasattr(exc, "message"))
            if self._uvicorn is not None:
                self._uvicorn.should_exit = True
            return
        # Everything allocated so far (frameworks, models) lives until exit: move it out of the
        # collector's sight, so full collections stop scanning it (they took milliseconds, a p99 spike).
        gc.collect()
        gc.freeze()
        failed = self.repository.failures
        log.info("ready: %s%s", ", ".join(n for n in self.repository.names if n not in failed),
                 f" (not serving, failed to load: {', '.join(failed)})" if failed else "")
        if self._on_ready is not None:
            self._on_ready()

    async def _shutdown(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.grpc is not None:
            await self.grpc.stop(self.config.shutdown_grace_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self, sock: socket.socket | None = None) -> int:
        """Serve until SIGTERM/SIGINT; the exit code (0, or 1 when start-up failed)."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        if sock is None:
            sock = bind_socket(self.config.host, self.config.http_port, reuse_port=False)
        host, port = sock.getsockname()[:2]
        uv_config = uvicorn.Config(
            # uvloop, accepting every waiting connection per turn (see _lib/accepting.py); httptools with
            # bounds on headers, deadlines and transfer codings (http_protocol.py).
            self.http, loop="modelpier._lib.accepting:greedy_uvloop", http=self._protocol, ws="none",
            lifespan="on",
            interface="asgi3",
            log_config=None, log_level=self.config.log_level, access_log=self.config.access_log,
            proxy_headers=False, server_header=False, backlog=2048,
            timeout_graceful_shutdown=max(1, round(self.config.shutdown_grace_s)),
        )
        server = uvicorn.Server(uv_config)
        self._uvicorn = server
        log.info("HTTP (V2, KServe V1, Seldon, /metrics, /docs) on http://%s:%d", host, port)
        server.run(sockets=[sock])
        if self.failure is not None or not server.started:
            return 1
        return 0


def build_server(config: ServerConfig, settings: Settings | None = None,
                 on_ready: Callable[[], None] | None = None, loader: Loader | None = None) -> ModelServer:
    """Everything one server process needs; the registry is opened only if a reference needs it.

    ``loader`` replaces how sources become runtimes (tests serve in-memory runtimes with it).
    """
    registry: Callable[[], Registry] | None = None
    if settings is not None:
        opened: list[Registry] = []

        def registry() -> Registry:
            if not opened:
                from modelpier.registry.factory import build_registry

                opened.append(build_registry(settings))
            return opened[0]

    if loader is None:
        def loader(source: ModelSource, options: ModelOptions) -> LoadedModel:
            return load_model(source, options, registry)

    return ModelServer(config, loader, on_ready)
