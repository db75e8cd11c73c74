"""Is a TCP port free to listen on, and which process holds it: for start-up checks that fail with one
line naming the port and its holder, before anything is created (``pier up``).

``holder`` reads Linux's ``/proc/net/tcp{,6}`` (the listening socket's inode) and ``/proc/*/fd`` (the
process that has it open); other processes' descriptors are visible to root and to their owner only,
so the answer is None when the holder cannot be seen. Without ``/proc`` it asks psutil when installed.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

_LISTEN = "0A"  # the TCP state column of /proc/net/tcp


def port_free(host: str, port: int) -> bool:
    """Can a server listen on ``host:port`` now? Binds the way servers do (``SO_REUSEADDR``, so a port in
    TIME_WAIT counts as free) and lets go at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """``pid 123 (python3 -m http.server 8600)`` of the process listening on ``port``, or None when unknown."""
    if (proc / "net" / "tcp").exists():
        inodes = listening_inodes(port, proc)
        return _owner_of(inodes, proc) if inodes else None
    return _psutil_holder(port)


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str]:
    """The inodes of the sockets listening on ``port``, any address, IPv4 or IPv6."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _owner_of(inodes: set[str], proc: Path) -> str | None:
    links = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in links:
                    return describe(int(entry.name), proc)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def describe(pid: int, proc: Path = Path("/proc")) -> str:
    """``pid N (its command line)``, the command line cut to 80 characters."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        command = " ".join(a.decode(errors="replace") for a in argv if a)
    except OSError:
        command = ""
    if len(command) > 80:
        command = command[:77] + "..."
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def _psutil_holder(port: int) -> str | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f"pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline())[:80]})"
    except (psutil.Error, OSError):
        return None
    return None
