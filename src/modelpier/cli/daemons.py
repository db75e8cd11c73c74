"""The platform's long-lived processes and their records under ``$PIER_HOME``.

``pier up`` runs the control plane in the foreground and the gateway as a detached child (own
session, like replicas), so the endpoint answers while the control plane restarts. Each is
recorded in a small JSON file, rewritten atomically:

* ``platform.json``: the ``pier up`` process itself (``pier down`` stops it first, or it would
  start again whatever ``pier down`` stops next);
* ``gateway.json``: the gateway's pid, argv and URL. The next ``pier up`` adopts a gateway that is
  still running the same command, and replaces one that runs another (a different port, gRPC port or
  control URL) or is gone.

The gateway process serves HTTP (``gateway/http1.py``) and, unless ``platform.gateway_grpc_port`` is 0, V2 gRPC
(``gateway/grpc_proxy.py``) on one event loop; ``run_gateway`` runs both and drains both on SIGTERM.

A record is trusted only while ``/proc/<pid>/cmdline`` still shows the recorded argv, so a reused
pid is never signalled. Stopping is SIGTERM, a bounded wait, then SIGKILL to the process group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modelpier.backends.local import process
from modelpier.backends.local.supervisor import child_env
from modelpier.settings import LimitSettings, Settings

if TYPE_CHECKING:
    from modelpier.gateway.app import GatewayApp
    from modelpier.gateway.dispatch import Dispatcher
    from modelpier.gateway.verifier import InvocationVerifier
    from modelpier.spec.routing import RoutingTable

log = logging.getLogger("modelpier.platform")

PLATFORM_FILE = "platform.json"
GATEWAY_FILE = "gateway.json"
GATEWAY_LOG = "gateway.log"


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    pid: int
    argv: tuple[str, ...]
    url: str
    started_at: float


def save_record(path: Path, record: ProcessRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(record), f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_record(path: Path) -> ProcessRecord | None:
    try:
        body = json.loads(path.read_text())
        return ProcessRecord(int(body["pid"]), tuple(str(a) for a in body["argv"]), str(body["url"]),
                             float(body["started_at"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable process record %s: %s", path, exc)
        return None


def running(pid: int, argv: Sequence[str]) -> bool:
    """Is ``pid`` alive and still running ``argv`` (not a reused pid)?"""
    if not process.pid_alive(pid):
        return False
    actual = process.cmdline(pid)
    return actual is None or tuple(actual) == tuple(argv)


def own_argv() -> tuple[str, ...]:
    """This process's argv as ``/proc`` shows it (with the interpreter of a script), for its record."""
    return tuple(process.cmdline(os.getpid()) or [sys.executable, *sys.argv])


def stop_processes(pids: Collection[int], grace_s: float, *, group: bool = True) -> list[int]:
    """SIGTERM each, wait up to ``grace_s`` for all, SIGKILL (the group, when ``group``) the rest; the
    pids that needed SIGKILL. Children of ours are reaped as they exit."""
    for pid in pids:
        process.send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if _alive(pid)}
        if left:
            time.sleep(0.05)
    for pid in left:
        process.send(pid, signal.SIGKILL, group=group)
        process.send(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in left) and time.monotonic() < kill_deadline:
        time.sleep(0.02)
    return sorted(left)


def _alive(pid: int) -> bool:
    try:
        alive, _ = process.reap(pid)
        return alive
    except ChildProcessError:
        return process.pid_alive(pid)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def gateway_argv(control_url: str, host: str, port: int, *, grpc_port: int = 0,
                 python: str = sys.executable) -> tuple[str, ...]:
    """``pier gateway`` as ``python -m modelpier.cli gateway``: absolute and stable, for adoption."""
    return (python, "-m", "modelpier.cli", "gateway", "--control", control_url, "--host", host, "--port",
            str(port), "--grpc-port", str(grpc_port))


def argv_option(argv: Sequence[str], name: str) -> str | None:
    """The value after ``name`` in an argv, or None."""
    for i, part in enumerate(argv[:-1]):
        if part == name:
            return argv[i + 1]
    return None


class GatewayProcess:
    """Adopts, starts and restarts the detached gateway of one ``pier up``."""

    def __init__(self, settings: Settings, control_url: str) -> None:
        cfg = settings.platform
        self._settings = settings
        self._path = settings.home / GATEWAY_FILE
        self._log = settings.home / GATEWAY_LOG
        self._control = control_url
        self.host = cfg.gateway_host
        previous = load_record(self._path)
        port = cfg.gateway_port
        if port == 0 and previous is not None and running(previous.pid, previous.argv):
            # "any port": keep the one the running gateway has
            port = int(argv_option(previous.argv, "--port") or 0)
        self.port = port or free_port(self.host)
        self.grpc_port = cfg.gateway_grpc_port  # 0: no gRPC
        self.argv = gateway_argv(control_url, self.host, self.port, grpc_port=self.grpc_port)
        self.url = f"http://{self.host}:{self.port}"
        self.grpc_address = f"{self.host}:{self.grpc_port}" if self.grpc_port else None
        self.pid: int | None = None
        self.token: str | None = None  # the API token it polls the routing table with (env, never argv)
        self.adopted = False
        self.restarts = 0
        self._previous = previous

    def ensure(self) -> str:
        """Adopt the recorded gateway when it runs our command, else (re)start it; what was done."""
        previous, self._previous = self._previous, None
        if previous is not None and running(previous.pid, previous.argv):
            if previous.argv == self.argv:
                self.pid, self.adopted = previous.pid, True
                log.info("adopted the gateway (pid %d) on %s", previous.pid, self.url)
                return f"adopted the running gateway (pid {previous.pid})"
            log.info("replacing the gateway (pid %d): it runs %s", previous.pid, " ".join(previous.argv[3:]))
            stop_processes([previous.pid], self._settings.platform.stop_grace_s)
        self._start()
        return f"started the gateway (pid {self.pid}, log {self._log})"

    def check(self) -> bool:
        """Restart the gateway if it died; True when it had to."""
        if self.pid is not None and _alive(self.pid):
            return False
        last = next((line for line in reversed(self.log_tail(5)) if line.strip()), "")
        # Its last line says why (a port taken meanwhile, a crash): in pier up's own output, not only the log.
        log.warning("the gateway (pid %s) is gone; starting it again (log %s, last line: %s)", self.pid, self._log,
                    last.strip() or "-")
        self.restarts += 1
        self._start()
        return True

    def _start(self) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        env = child_env(self._settings, os.environ)
        if self.token:
            env["PIER_TOKEN"] = self.token
        self.pid = process.spawn(self.argv, env, self._log, f"--- {stamp} starting the gateway on {self.url} ---")
        self.adopted = False
        save_record(self._path, ProcessRecord(self.pid, self.argv, self.url, time.time()))
        log.info("started the gateway (pid %d) on %s", self.pid, self.url)

    def alive(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    def log_tail(self, lines: int = 20) -> list[str]:
        return process.tail(self._log, lines)


# -- the gateway process itself (``pier gateway``) ---------------------------------------------------
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
