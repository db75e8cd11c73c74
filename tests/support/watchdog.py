"""Stop the servers a test run started even when the run dies (Ctrl-C twice, a timeout, SIGKILL).

``watch(pid)`` starts a small process (this file run as a script) holding the read end of a pipe
whose write end only the test process holds. When the fixture stops its server normally it calls
``release()``: the watchdog reads "done" and exits. When the test process dies in any way, the kernel
closes the write end, the watchdog reads EOF without "done", and signals the watched processes
(SIGTERM or the one given, SIGKILL after a grace). The watchdog is in its own session, so a Ctrl-C
on the terminal does not reach it. A pipe and not a parent-death signal: PostgreSQL (``pg_ctl``)
and Redis (``--daemonize``) detach from their starter, so only a process watching on their behalf
can stop them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 10.0


class Watchdog:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def release(self) -> None:
        """The fixture stopped its server itself: the watchdog exits without signalling anything."""
        if self._proc.stdin is None or self._proc.stdin.closed:
            return
        try:
            self._proc.stdin.write(b"done")
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def watch(*pids: int, sig: int = signal.SIGTERM) -> Watchdog:
    """Signal ``pids`` (``sig``, then SIGKILL after a grace) once this process dies without ``release()``."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(int(sig)), *map(str, pids)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
    return Watchdog(proc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has ended; its parent (init for a daemon) reaps it late
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sig, pids = int(argv[0]), [int(p) for p in argv[1:]]
    if sys.stdin.buffer.read() == b"done":
        return
    for pid in pids:
        if _alive(pid):
            os.kill(pid, sig)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _main(sys.argv[1:])
