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


def _worker_main(config: ServerConfig, settings: Settings | None, ready: Event, log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s [%(process)d] %(name)s: "
                        "%(message)s")
    server = build_server(config, settings, on_ready=ready.set)
    sock = bind_socket(config.host, config.http_port, reuse_port=True)
    raise SystemExit(server.run(sock))


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: SpawnProcess | None = None
        self.ready: Event = _CTX.Event()
        self.was_ready = False
        self.restarts = 0
        self.restart_at = 0.0


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
    workers = [_Worker(i) for i in range(config.workers)]

    def start(worker: _Worker) -> None:
        worker.ready = _CTX.Event()
        worker.process = _CTX.Process(target=_worker_main, args=(config, settings, worker.ready, config.log_level),
                                      name=f"pier-serve-{worker.index}", daemon=False)
        worker.process.start()

    for worker in workers:
        start(worker)
    log.info("started %d workers on port %d", len(workers), config.http_port)
    code = 0
    try:
        while not stop.wait(0.2):
            for worker in workers:
                process = worker.process
                if worker.ready.is_set():
                    worker.was_ready = True
                if process is None or process.is_alive():
                    if process is None and time.monotonic() >= worker.restart_at:
                        start(worker)
                    continue
                if not worker.was_ready:
                    log.error("worker %d exited with code %s before it was ready; stopping",
                              worker.index, process.exitcode)
                    code = 1
                    stop.set()
                    break
                worker.restarts += 1
                backoff = min(MAX_BACKOFF_S, 0.5 * 2 ** worker.restarts)
                log.warning("worker %d died (exit code %s); restarting in %.1fs", worker.index,
                            process.exitcode, backoff)
                worker.process = None
                worker.restart_at = time.monotonic() + backoff
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: the worker drains its in-flight requests
        deadline = time.monotonic() + config.shutdown_grace_s + 5
        for worker in workers:
            if worker.process is not None:
                worker.process.join(max(0.1, deadline - time.monotonic()))
                if worker.process.is_alive():
                    worker.process.kill()
        for sock in reservations:
            sock.close()
    return code
