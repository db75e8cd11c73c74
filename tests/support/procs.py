"""Start real modelpier processes on loopback and wait for them by polling a condition."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.watchdog import watch

BIN = Path(sys.executable).parent
# Every process a test starts knows this admin token: the control plane accepts it from its first start
# (PIER_ADMIN_TOKEN) and the CLI sends it (PIER_TOKEN).
ADMIN_TOKEN = "pier_test-admin-0123456789abcdefghijklmnopqrstuv"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False
    return check


def pier_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update({"PIER_HOME": str(home), "PIER_USER": "tester", "PIER_ADMIN_TOKEN": ADMIN_TOKEN,
                "PIER_TOKEN": ADMIN_TOKEN}, **extra)
    return env


def run_pier(args: list[str], home: Path, *, check: bool = False, timeout: float = 120, **extra: str
             ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "pier"), *args], env=pier_env(home, **extra), capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"pier {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@contextmanager
def control_plane(home: Path, *, backend: str = "none", **extra: str) -> Iterator[str]:
    """A real `pier server` on a free loopback port; yields its base URL. The backend is ``none`` unless
    asked: the API keeps desired state and no replica starts (tests of the API, not of serving)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / "pier"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend", backend], env=pier_env(home, **extra), stdout=log, stderr=subprocess.STDOUT)
    guard = watch(proc.pid)  # stopped even when the test run is interrupted
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or http_ok(f"{url}/healthz")(), what=f"pier server on {url}")
        if proc.poll() is not None:
            raise AssertionError(f"pier server exited early:\n{(home / 'server.log').read_text()}")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
        log.close()
