"""Operating-system helpers of the local backend: spawn a detached child, look at a pid, read logs.

Replicas run in their own session so a control plane's exit (or Ctrl-C in its terminal) does not
reach them; a later control plane recognises them by pid and command line (``/proc`` on Linux).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path, header: str) -> int:
    """Start ``argv`` detached (own session), stdout and stderr appended to ``log_path``; its pid.

    ``posix_spawn`` rather than ``subprocess.Popen``: a replica is meant to outlive the object that
    started it, which ``Popen`` reports as a leak. Our other descriptors are close-on-exec (PEP 446).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(header.encode() + b"\n")
        log.flush()
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, log.fileno(), 1), (os.POSIX_SPAWN_DUP2, log.fileno(), 2)]
        return os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions, setsid=True)


def reap(pid: int) -> tuple[bool, int | None]:
    """For a child of ours: ``(alive, exit code)``, collecting it when it exited (negative code: the
    signal that killed it). ``ChildProcessError`` when ``pid`` is not our child."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        return True, None
    return False, os.waitstatus_to_exitcode(status)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an adopted child nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None when it cannot be read (gone, or no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return []  # a zombie or kernel thread
    # Each argument ends with a NUL; an empty argument (`--outputs ""`) is two NULs in a row, kept.
    return [part.decode(errors="replace") for part in raw.removesuffix(b"\0").split(b"\0")]


def send(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    """Signal a process (or its whole process group); a process already gone is not an error."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file, reading only its end."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = min(size, max(4096, lines * 200))
            while True:
                f.seek(size - block)
                data = f.read(block)
                if data.count(b"\n") > lines or block == size:
                    break
                block = min(size, block * 2)
    except OSError:
        return []
    return [line.decode(errors="replace") for line in data.splitlines()[-lines:]]
