"""Several server processes on one port: a small supervisor in uvicorn's shape.

Each worker is a whole server (its own event loop, models and metrics) bound with SO_REUSEPORT,
so the kernel spreads connections across workers and no request crosses a process boundary. The
supervisor reserves the ports (resolving port 0 once, for all), starts the workers, forwards
SIGTERM/SIGINT to them (its signal handlers only set a flag), restarts a worker that dies after
it became ready (with backoff), and stops everything if a worker fails before becoming ready.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from dataclasses import replace
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType

from modelpier.server.app import bind_socket, build_server
from modelpier.server.config import ServerConfig
from modelpier.settings import Settings

log = logging.getLogger("modelpier.server")
_CTX = multiprocessing.get_context("spawn")
MAX_BACKOFF_S = 30.0
POLL_S = 0.2


def _worker_main(config: ServerConfig, settings: Settings | None, ready: Event) -> None:
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    server = build_server(config, settings, on_ready=ready.set)
    sock = bind_socket(config.host, config.http_port, reuse_port=True)
    raise SystemExit(server.run(sock))


class _Worker:
    def __init__(self, index: int, config: ServerConfig, settings: Settings | None) -> None:
        self.index = index
        self._config = config
        self._settings = settings
        self.process: SpawnProcess | None = None
        self.ready: Event = _CTX.Event()
        self.was_ready = False
        self.restarts = 0
        self.restart_at = 0.0

    def start(self) -> None:
        self.ready = _CTX.Event()
        self.process = _CTX.Process(target=_worker_main, args=(self._config, self._settings, self.ready),
                                    name=f"pier-serve-{self.index}")
        self.process.start()

    def check(self) -> bool:
        """Keep this worker running; False when it failed before ever becoming ready."""
        if self.ready.is_set():
            self.was_ready = True
        process = self.process
        if process is None:
            if time.monotonic() >= self.restart_at:
                self.start()
            return True
        if process.is_alive():
            return True
        if not self.was_ready:
            log.error("worker %d exited with code %s before it was ready", self.index, process.exitcode)
            return False
        self.restarts += 1
        backoff = min(MAX_BACKOFF_S, 0.5 * 2 ** self.restarts)
        log.warning("worker %d died (exit code %s); restarting in %.1fs", self.index, process.exitcode, backoff)
        self.process = None
        self.restart_at = time.monotonic() + backoff
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()  # SIGTERM: the worker drains its in-flight requests

    def join(self, deadline: float) -> None:
        if self.process is not None:
            self.process.join(max(0.1, deadline - time.monotonic()))
            if self.process.is_alive():
                self.process.kill()


def run_workers(config: ServerConfig, settings: Settings | None) -> int:
    """Run ``config.workers`` server processes until SIGTERM/SIGINT; the exit code."""
    reservations = [bind_socket(config.host, config.http_port, reuse_port=True)]
    config = replace(config, http_port=reservations[0].getsockname()[1])
    if config.grpc_port is not None:
        reservations.append(bind_socket(config.host, config.grpc_port, reuse_port=True))
        config = replace(config, grpc_port=reservations[1].getsockname()[1])
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = [_Worker(i, config, settings) for i in range(config.workers)]
    for worker in workers:
        worker.start()
    log.info("started %d workers on port %d", len(workers), config.http_port)
    code = 0
    try:
        while not stop.wait(POLL_S):
            if not all(worker.check() for worker in workers):
                code = 1
                break
    finally:
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + config.shutdown_grace_s + 5
        for worker in workers:
            worker.join(deadline)
        for sock in reservations:
            sock.close()
    return code
