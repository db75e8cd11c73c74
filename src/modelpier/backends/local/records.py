"""The local backend's state file: what it started, so a restarted control plane can adopt it.

``$PIER_HOME/replicas/state.json`` is rewritten atomically (temp file + rename) after every change;
a reader sees the old file or the new one, never half of one. Fields added later are optional when
read (``grpc_port``), so a state file written by an older modelpier still loads and its replicas
are adopted.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelpier.backends.base import ReplicaSpec

log = logging.getLogger("modelpier.backends.local")

FORMAT = 1


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    replica_id: str
    spec: ReplicaSpec
    pid: int
    port: int
    argv: tuple[str, ...]
    started_at: float
    restarts: int
    grpc_port: int | None = None  # None: a replica started without gRPC (state files before it had one)


def save(path: Path, records: list[ReplicaRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, "replicas": [asdict(r) for r in records]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _spec(body: dict[str, Any]) -> ReplicaSpec:
    # JSON has no tuples; the spec is frozen and compared, so its sequences must be tuples again.
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in body.items()}
    return ReplicaSpec(**fields)


def load(path: Path) -> list[ReplicaRecord]:
    """The records in the file; an unreadable file is logged and treated as empty (replicas it
    named are then unknown: their ports stay taken until they are stopped by hand)."""
    try:
        body = json.loads(path.read_text())
        return [ReplicaRecord(replica_id=r["replica_id"], spec=_spec(r["spec"]), pid=int(r["pid"]),
                              port=int(r["port"]), argv=tuple(r["argv"]), started_at=float(r["started_at"]),
                              restarts=int(r["restarts"]),
                              grpc_port=None if r.get("grpc_port") is None else int(r["grpc_port"]))
                for r in body["replicas"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable replica state file %s: %s", path, exc)
        return []

