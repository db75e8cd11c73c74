"""Shared fixtures: real PostgreSQL, S3 (moto) and Redis servers on loopback, one of each per session.

Servers start on free ports, are waited for by polling (never by sleeping a fixed time), and are
stopped by the PID we started; a watchdog (tests/support/watchdog.py) stops them when the
test process dies before it could (an interrupted or timed-out run). Each test gets its own
database (``postgres_database``) or bucket (``s3_bucket``), so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import free_port, wait_until
from tests.support.watchdog import Watchdog, watch
from tests.support.xdist_recovery import make_scheduler

INSTALL_HINT = "run scripts/install-system-deps.sh (as root) to install them"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` that does not deadlock after a worker dies (tests/support/xdist_recovery.py)."""
    return make_scheduler(config, log)


# -- PostgreSQL ---------------------------------------------------------------------------------------


def _postgres_bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).parent] if on_path else []
    # Debian keeps the server binaries off PATH, one folder per major version; prefer the newest.
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _run_as_postgres(command: str) -> None:
    """Run a shell command as the ``postgres`` user when we are root (initdb refuses root)."""
    argv = ["su", "postgres", "-s", "/bin/sh", "-c", command] if os.geteuid() == 0 else ["/bin/sh", "-c", command]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _can_connect(conninfo: str) -> bool:
    import psycopg  # only PostgreSQL tests need the driver

    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of the admin database of a throwaway PostgreSQL server."""
    with postgres_server() as url:
        yield url


@contextmanager
def postgres_server() -> Iterator[str]:
    bindir = _postgres_bin_dir()
    if bindir is None:
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) were not found; {INSTALL_HINT}")
    base = Path(tempfile.mkdtemp(prefix="pier-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()
    pg_ctl = shlex.quote(str(bindir / "pg_ctl"))
    # Durability is pointless for a throwaway server; turning it off makes the tests faster.
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    pid: int | None = None
    guard: Watchdog | None = None
    try:
        _run_as_postgres(f"{shlex.quote(str(bindir / 'initdb'))} -D {data} -A trust -U postgres >/dev/null")
        _run_as_postgres(f"{pg_ctl} -D {data} -o {shlex.quote(options)} -l {base}/log -w start")
        pid = int((data / "postmaster.pid").read_text().split()[0])
        guard = watch(pid, sig=signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        conninfo = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        wait_until(lambda: _can_connect(conninfo), timeout=30, what=f"PostgreSQL on port {port}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(RuntimeError):
            _run_as_postgres(f"{pg_ctl} -D {data} -m fast -w stop")
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        if guard is not None:
            guard.release()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped after the test."""
    import psycopg  # only PostgreSQL tests need the driver

    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- S3 (moto) ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server; AWS credentials in the environment point at it for the session."""
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.is_file():
        pytest.fail(f"{moto} is missing; install the dev extras: pip install -e '.[dev]'")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "w") as log, pytest.MonkeyPatch.context() as env:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            # Keep a developer's own AWS config and profiles out of the tests.
            "AWS_CONFIG_FILE": str(log_path.parent / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(log_path.parent / "none"),
        }.items():
            env.setenv(key, value)
        env.delenv("AWS_PROFILE", raising=False)
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                stderr=subprocess.STDOUT)
        guard = watch(proc.pid)
        try:
            wait_until(lambda: proc.poll() is not None or _answers(url), timeout=30, what=f"moto on {url}")
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited early:\n{log_path.read_text()}")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            guard.release()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    import boto3  # only S3 tests need boto3

    return boto3.session.Session().client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh bucket, emptied and deleted after the test (moto keeps objects in memory)."""
    client = s3_client
    name = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)


# -- Redis ----------------------------------------------------------------------------------------


class RedisServer:
    """A throwaway ``redis-server`` on a loopback port, without persistence, stopped by its PID.

    ``stop()`` then ``start()`` brings it back on the same port: an outage, for tests of what the
    gateway does while Redis is away.
    """

    def __init__(self, base: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(f"redis-server was not found; {INSTALL_HINT}")
        self.binary, self.base, self.port = binary, base, free_port()
        self.pidfile, self.logfile = base / f"redis-{self.port}.pid", base / f"redis-{self.port}.log"
        self.pid: int | None = None
        self._guard: Watchdog | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        subprocess.run([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--daemonize", "yes", "--dir", str(self.base),
                        "--pidfile", str(self.pidfile), "--logfile", str(self.logfile)],
                       check=True, capture_output=True, timeout=30)
        wait_until(lambda: self.pidfile.is_file() and self.pidfile.read_text().strip().isdigit(), timeout=30,
                   what=f"redis-server's pid file {self.pidfile}")
        self.pid = int(self.pidfile.read_text().strip())
        self._guard = watch(self.pid)
        wait_until(self.answers, timeout=30, what=f"redis-server on port {self.port} (log: {self.logfile})")

    def stop(self) -> None:
        pid, self.pid = self.pid, None
        if pid is None and self.pidfile.is_file() and self.pidfile.read_text().strip().isdigit():
            pid = int(self.pidfile.read_text().strip())  # it started but never answered
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not _running(pid), timeout=15, what=f"redis-server {pid} to stop")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release()


def _running(pid: int) -> bool:
    """Alive and not a zombie: a daemon's parent is init, which may reap it late."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self").exists():
        return _pid_alive(pid)  # no /proc (macOS)
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis for the session; tests keep apart by using their own key prefixes."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- isolated environments ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def environments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of isolated environments for the session (PIER_REGISTRY__ENVIRONMENTS_DIR): uv builds
    each environment once, whichever test needs it first."""
    return tmp_path_factory.mktemp("environments")
