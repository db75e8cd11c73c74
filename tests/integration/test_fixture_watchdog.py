"""The servers the fixtures start die with an interrupted test run (issue 13, item 10).

A child process starts a Redis and a PostgreSQL the way the fixtures do, prints their pids, and is
killed with SIGKILL: nothing of it gets to clean up, as with a run killed by CI or a second Ctrl-C.
The watchdogs must stop both servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.procs import wait_until
from tests.support.watchdog import _alive

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, tempfile, time
from pathlib import Path
from tests.conftest import RedisServer, postgres_server

redis = RedisServer(Path(tempfile.mkdtemp(prefix="pier-redis-")))
redis.start()
with postgres_server() as url:
    pg_pid = int(next(Path(p) for p in Path(tempfile.gettempdir()).glob("pier-pg-*/data/postmaster.pid")
                      if url.split(":")[-1].split("/")[0] in Path(p).read_text()).read_text().split()[0])
    print(json.dumps({"redis": redis.pid, "postgres": pg_pid}), flush=True)
    time.sleep(600)
"""


@pytest.mark.postgres
def test_servers_stop_when_the_test_process_is_killed() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TMPDIR": tempfile.gettempdir()})
    try:
        assert child.stdout is not None
        pids = json.loads(child.stdout.readline())
        assert _alive(pids["redis"])
        assert _alive(pids["postgres"])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    wait_until(lambda: not _alive(pids["redis"]) and not _alive(pids["postgres"]), timeout=30,
               what="Redis and PostgreSQL to stop after the test process died")
