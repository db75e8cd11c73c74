"""The gateway as a detached process of ``pier up``, and the records of the platform's long-lived processes.

``pier up`` runs the control plane in the foreground and the gateway as a detached child (own
session, like replicas), so the endpoint answers while the control plane restarts. Each is
recorded in a small JSON file under ``$PIER_HOME``, rewritten atomically:

* ``platform.json``: the ``pier up`` process itself (``pier down`` stops it first, or it would
  start again whatever ``pier down`` stops next);
* ``gateway.json``: the gateway's pid, argv and URL. The next ``pier up`` adopts a gateway that is
  still running the same command, and replaces one that runs another (a different port, gRPC port or
  control URL) or is gone.

A record is trusted only while ``/proc/<pid>/cmdline`` still shows the recorded argv, so a reused
pid is never signalled. Stopping is SIGTERM, a bounded wait, then SIGKILL to the process group.
What the gateway process runs is ``gateway/serve.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelpier.backends.local import process
from modelpier.backends.local.supervisor import child_env
from modelpier.errors import ServiceUnavailable
from modelpier.settings import Settings

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
        cfg = settings.gateway
        self._settings = settings
        self._path = settings.home / GATEWAY_FILE
        self._log = settings.home / GATEWAY_LOG
        self._control = control_url
        self.host = cfg.host
        previous = load_record(self._path)
        port = cfg.port
        if port == 0 and previous is not None and running(previous.pid, previous.argv):
            # "any port": keep the one the running gateway has
            port = int(argv_option(previous.argv, "--port") or 0)
        self.port = port or free_port(self.host)
        self.grpc_port = cfg.grpc_port  # 0: no gRPC
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


async def wait_for_gateway(gateway: GatewayProcess, timeout_s: float = 30.0) -> None:
    """Until the gateway answers ``/healthz``; ``ServiceUnavailable`` with its log when it cannot start."""
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{gateway.url}/healthz")).status_code == 200:
                    return
            if not gateway.alive():
                break
            await asyncio.sleep(0.05)
    tail = "\n".join(gateway.log_tail(10))
    raise ServiceUnavailable(f"the gateway did not start on {gateway.url} (is port {gateway.port} in use?); "
                             f"its log ends:\n{tail}")


async def watch_gateway(gateway: GatewayProcess, interval_s: float = 1.0) -> None:
    """Restart the gateway whenever it died, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(gateway.check)
        except Exception:
            log.exception("checking the gateway failed; trying again in %gs", interval_s)
