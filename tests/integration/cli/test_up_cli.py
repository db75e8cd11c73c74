"""``pier up`` on a fresh machine (issue 14): busy ports fail at once with one line naming the port, its
holder and the flag, before anything is created; a first start prints no migration chatter."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.integration.platform_support import pier_down, replica_env
from tests.support.procs import BIN, free_port, http_ok, pier_env, run_pier, wait_until

pytestmark = pytest.mark.slow


@contextmanager
def held_port() -> Iterator[int]:
    """A port some other program listens on (this test process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {**replica_env(33000 + os.getpid() % 50 * 20), "PIER_LOG_LEVEL": "info"}


@pytest.mark.parametrize(("which", "flag"), [("api", "--port"), ("gateway", "--gateway-port"),
                                             ("grpc", "--gateway-grpc-port")])
def test_a_busy_port_stops_pier_up_before_anything_is_created(tmp_path: Path, which: str, flag: str) -> None:
    home = tmp_path / "home"
    with held_port() as busy:
        ports = {"api": free_port(), "gateway": free_port(), "grpc": free_port(), which: busy}
        result = run_pier(["up", "--port", str(ports["api"]), "--gateway-port", str(ports["gateway"]),
                           "--gateway-grpc-port", str(ports["grpc"])], home, timeout=60, **env())
    assert result.returncode == 5, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: port {busy} (")
    assert f"already in use by pid {os.getpid()} (" in lines[0]
    assert flag in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "token" not in result.stdout  # no admin made, so none printed
    assert not home.exists() or not any(home.iterdir())  # no database, no records, no registry


def test_a_first_start_prints_no_alembic_lines(tmp_path: Path) -> None:
    home, variables = tmp_path / "home", env()
    api, gateway = free_port(), free_port()
    out = tmp_path / "up.out"
    with out.open("wb") as log:
        proc = subprocess.Popen([str(BIN / "pier"), "up", "--no-example", "--port", str(api), "--gateway-port",
                                 str(gateway)], env=pier_env(home, **variables), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or "modelpier is up" in out.read_text(), timeout=60,
                   what="pier up")
        assert proc.poll() is None, out.read_text()
        wait_until(http_ok(f"http://127.0.0.1:{api}/healthz"), timeout=30, what="the API answering")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        pier_down(home, variables)
    text = out.read_text()
    assert "modelpier is up" in text
    assert "alembic" not in text.lower(), text
