"""Reproducible tar layers: the same files give the same bytes, hence the same digest.

A layer is written from ``LayerEntry`` values sorted by path, each with its metadata normalised:
a fixed modification time (``SOURCE_DATE_EPOCH``, 0 by default), uid/gid 0 with empty owner names
unless the entry says otherwise, modes reduced to 0755/0644 (or kept, for a base root filesystem
where setuid bits and owners matter). The tar stream goes through gzip with mtime 0 and no file
name, so the compressed digest is stable too. ``write_layer`` returns both digests: the
compressed one addresses the blob, the uncompressed one (``diff_id``) goes into the image config.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from modelpier.errors import InvalidInput

EntryKind = Literal["file", "dir", "symlink"]
DEFAULT_MTIME = 0


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """One member of a layer. ``path`` is relative to the image root, without a leading slash;
    a file's bytes come from ``source`` (a file on disk) or ``data``."""

    path: str
    kind: EntryKind
    mode: int
    size: int = 0
    source: Path | None = None
    data: bytes | None = None
    link: str = ""
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class WrittenLayer:
    """A layer blob written to ``path``: its compressed digest and size, and its ``diff_id``."""

    path: Path
    digest: str
    size: int
    diff_id: str


def normal_mode(kind: EntryKind, mode: int) -> int:
    """0755 for folders and executables, 0644 for other files, 0777 for symlinks."""
    if kind == "dir":
        return 0o755
    if kind == "symlink":
        return 0o777
    return 0o755 if mode & 0o111 else 0o644


def check_path(path: str) -> str:
    """``path`` as a clean relative POSIX path; refuses absolute paths and ``..``."""
    clean = path.lstrip("/")
    parts = PurePosixPath(clean).parts
    if not clean or any(p in ("..", ".") for p in parts) or "\\" in clean:
        raise InvalidInput(f"layer path {path!r} must be relative, without '.' or '..'")
    return "/".join(parts)


def tree_entries(root: Path, prefix: str, *, keep_owner: bool = False, keep_mode: bool = False,
                 skip: Iterable[str] = ()) -> list[LayerEntry]:
    """Every file, folder and symlink under ``root`` as entries under ``prefix`` (e.g. ``opt/pier``),
    the folders of ``prefix`` included. Device files, fifos and sockets are left out (a container
    runtime creates ``/dev``); hard links become regular files. ``skip`` lists relative paths whose
    whole subtree is left out."""
    skipped = {check_path(s) for s in skip}
    entries: list[LayerEntry] = []
    prefix = check_path(prefix) if prefix.strip("/") else ""
    if prefix:
        parts = prefix.split("/")
        entries.extend(LayerEntry("/".join(parts[: i + 1]), "dir", 0o755) for i in range(len(parts)))
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if _rel(rel_dir, d) not in skipped]
        for name in [*dirnames, *filenames]:
            rel = _rel(rel_dir, name)
            if rel in skipped:
                continue
            full = Path(dirpath) / name
            info = full.lstat()
            entry = _entry_of(full, f"{prefix}/{rel}" if prefix else rel, info, keep_owner, keep_mode)
            if entry is not None:
                entries.append(entry)
    return entries


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}"


def _entry_of(full: Path, path: str, info: os.stat_result, keep_owner: bool, keep_mode: bool) -> LayerEntry | None:
    uid, gid = (info.st_uid, info.st_gid) if keep_owner else (0, 0)
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return LayerEntry(path, "symlink", 0o777, link=os.readlink(full), uid=uid, gid=gid)
    if stat.S_ISDIR(info.st_mode):
        return LayerEntry(path, "dir", mode if keep_mode else 0o755, uid=uid, gid=gid)
    if stat.S_ISREG(info.st_mode):
        return LayerEntry(path, "file", mode if keep_mode else normal_mode("file", mode), size=info.st_size,
                          source=full, uid=uid, gid=gid)
    return None  # devices, fifos, sockets


def _tar_info(entry: LayerEntry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path + ("/" if entry.kind == "dir" else ""))
    info.mtime = mtime
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link
    else:
        info.type = tarfile.REGTYPE
        info.size = len(entry.data) if entry.data is not None else entry.size
    return info


def sorted_entries(entries: Iterable[LayerEntry]) -> list[LayerEntry]:
    """Entries in the one order a layer is written in (by path; a folder before its content),
    the last of several entries for one path winning."""
    by_path: dict[str, LayerEntry] = {}
    for entry in entries:
        by_path[check_path(entry.path)] = entry
    return [by_path[p] for p in sorted(by_path, key=lambda p: p.split("/"))]


class _HashingWriter(io.RawIOBase):
    """Writes to a file and hashes what passes (the compressed stream)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]  # RawIOBase types it for buffers
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


class _TarHasher(io.RawIOBase):
    """Hashes the uncompressed tar stream on its way into gzip (the layer's ``diff_id``)."""

    def __init__(self, gz: gzip.GzipFile) -> None:
        self.gz = gz
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]  # RawIOBase types it for buffers
        self.gz.write(data)
        self.sha.update(data)
        return len(data)


def write_layer(entries: Iterable[LayerEntry], dest: Path, *, mtime: int = DEFAULT_MTIME,
                compresslevel: int = 6) -> WrittenLayer:
    """Write a gzip-compressed tar layer of ``entries`` to ``dest``; same entries, same bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as raw:
        hashing = _HashingWriter(raw)
        # mtime=0 and an empty file name: gzip's header would otherwise carry the time and the path.
        with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=compresslevel) as gz:
            tar_out = _TarHasher(gz)
            with tarfile.open(fileobj=tar_out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in sorted_entries(entries):
                    info = _tar_info(entry, mtime)
                    if info.type != tarfile.REGTYPE:
                        tar.addfile(info)
                        continue
                    if entry.data is not None:
                        tar.addfile(info, io.BytesIO(entry.data))
                        continue
                    assert entry.source is not None
                    with entry.source.open("rb") as fh:
                        tar.addfile(info, fh)
    return WrittenLayer(path=dest, digest=f"sha256:{hashing.sha.hexdigest()}", size=hashing.size,
                        diff_id=f"sha256:{tar_out.sha.hexdigest()}")


def list_layer(path: Path) -> list[tarfile.TarInfo]:
    """The members of a gzip-compressed (or plain) tar layer, in order."""
    with tarfile.open(path, mode="r:*") as tar:
        return tar.getmembers()
