"""``_lib/ports``: a held port is seen as busy, and its holder named from /proc."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from modelpier._lib.ports import describe, holder, listening_inodes, port_free


def test_a_listening_port_is_busy_and_its_holder_is_this_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        assert holder(port) == describe(os.getpid())
        assert (holder(port) or "").startswith(f"pid {os.getpid()} (")
    assert port_free("127.0.0.1", port)
    assert holder(port) is None


def test_the_proc_table_is_read_for_listening_sockets_only(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "net" / "tcp").write_text(
        header
        + "   0: 0100007F:2198 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 4242 1\n"  # 8600 LISTEN
        + "   1: 0100007F:2198 0100007F:A000 01 00000000:00000000 00:00000000 00000000  0 0 4343 1\n")  # ESTABLISHED
    assert listening_inodes(8600, tmp_path) == {"4242"}
    assert listening_inodes(8700, tmp_path) == set()
    (tmp_path / "77" / "fd").mkdir(parents=True)
    (tmp_path / "77" / "fd" / "3").symlink_to("socket:[4242]")
    (tmp_path / "77" / "cmdline").write_bytes(b"python3\0-m\0http.server\08600\0")
    assert holder(8600, tmp_path) == "pid 77 (python3 -m http.server 8600)"
