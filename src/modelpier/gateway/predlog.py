"""The prediction log: sampled requests and answers of a deployment, kept for monitoring and debugging.

A deployment opts in with ``spec.predictionLog`` (``TrafficPolicy.log_sample_rate`` / ``log_sink``).
The gateway decides with ``should_log`` and hands a ``PredictionRecord`` to ``PredictionLogger.log``,
which only enqueues: one background thread encodes and writes records in batches, so the request
path never waits for a disk. The queue is bounded; when the writer falls behind, new records are
dropped and counted rather than slowing requests down.

Sinks, chosen per record: ``jsonl`` appends one JSON object per line to
``$PIER_HOME/predictions/{project}/{deployment}.jsonl`` (rotated to ``.jsonl.1`` past
``max_file_bytes``); ``sqlite`` inserts into ``$PIER_HOME/predictions/predictions.db`` (table
``predictions``, indexed on project, deployment, ts). ``read_predictions`` reads either back in one
form. Both live on the gateway's machine; files are created mode 0600 (they hold request data).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from modelpier.errors import NotFound, PierError, ServiceUnavailable, StoreBusy
from modelpier.spec.names import validate_name

log = logging.getLogger("modelpier.gateway.predlog")

Sink = Literal["jsonl", "sqlite"]
SINKS: tuple[str, ...] = ("jsonl", "sqlite")
DEFAULT_MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    """What the shadow predictor answered to the mirrored copy of the request."""

    predictor: str
    model_version: str | None
    status: int
    latency_ms: float
    response_body: bytes
    response_content_type: str | None = None


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One request as the gateway served it. Bodies are raw: encoding happens on the writer thread."""

    ts: float  # unix seconds when the request arrived
    request_id: str
    project: str
    deployment: str
    predictor: str
    model_version: str | None
    status: int
    latency_ms: float
    cache_hit: bool
    request_body: bytes
    response_body: bytes
    request_content_type: str | None = None
    response_content_type: str | None = None
    shadow: ShadowOutcome | None = None


def should_log(sample_rate: float | None, rand: float) -> bool:
    """Is this request sampled? ``rand`` in [0, 1) is injected; None means the log is off."""
    return sample_rate is not None and rand < sample_rate


def _json_like(content_type: str | None) -> bool:
    if content_type is None:
        return True  # clients often omit it; a body that does not parse is stored as base64 anyway
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def encode_body(body: bytes, content_type: str | None, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict[str, Any]:
    """``{"encoding": "json"|"base64"|"text", "body": ..., "bytes": size, "truncated": bool}``.

    JSON bodies are stored decoded, so the log can be queried as data; other bodies as base64. A
    body over ``max_bytes`` keeps its first ``max_bytes``: as text when it was JSON (the cut leaves
    it unparseable but readable), as base64 otherwise.
    """
    size = len(body)
    if size > max_bytes:
        head = body[:max_bytes]
        if _json_like(content_type):
            return {"encoding": "text", "body": head.decode("utf-8", "replace"), "bytes": size, "truncated": True}
        return {"encoding": "base64", "body": base64.b64encode(head).decode("ascii"), "bytes": size,
                "truncated": True}
    if _json_like(content_type) and body:
        try:
            return {"encoding": "json", "body": orjson.loads(body), "bytes": size, "truncated": False}
        except orjson.JSONDecodeError:
            pass
    return {"encoding": "base64", "body": base64.b64encode(body).decode("ascii"), "bytes": size, "truncated": False}


def record_to_dict(record: PredictionRecord, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict[str, Any]:
    """The stored (and read back) form of a record, the same in both sinks."""
    shadow = record.shadow
    return {
        "ts": record.ts, "requestId": record.request_id, "project": record.project, "deployment": record.deployment,
        "predictor": record.predictor, "modelVersion": record.model_version, "status": record.status,
        "latencyMs": round(record.latency_ms, 3), "cacheHit": record.cache_hit,
        "request": encode_body(record.request_body, record.request_content_type, max_bytes=max_body_bytes),
        "response": encode_body(record.response_body, record.response_content_type, max_bytes=max_body_bytes),
        "shadow": None if shadow is None else {
            "predictor": shadow.predictor, "modelVersion": shadow.model_version, "status": shadow.status,
            "latencyMs": round(shadow.latency_ms, 3),
            "response": encode_body(shadow.response_body, shadow.response_content_type, max_bytes=max_body_bytes)},
    }


def predictions_dir(home: Path) -> Path:
    return home / "predictions"


def jsonl_path(home: Path, project: str, deployment: str) -> Path:
    return predictions_dir(home) / project / f"{deployment}.jsonl"


def sqlite_path(home: Path) -> Path:
    return predictions_dir(home) / "predictions.db"


def _rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    project TEXT NOT NULL,
    deployment TEXT NOT NULL,
    request_id TEXT NOT NULL,
    predictor TEXT NOT NULL,
    model_version TEXT,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    cache_hit INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_by_deployment ON predictions (project, deployment, ts);
"""
_INSERT = ("INSERT INTO predictions (ts, project, deployment, request_id, predictor, model_version, status, "
           "latency_ms, cache_hit, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


class PredictionLogger:
    """One per gateway, serving every deployment. ``log`` never blocks; ``aclose`` writes what is queued.

    Counters for metrics: ``written``, ``dropped`` (queue full, or logged after close) and ``failed``
    (the disk refused them; logged once per streak of failures).
    """

    def __init__(self, home: Path, *, max_queue: int = 10_000, batch_size: int = 500, flush_interval_s: float = 0.2,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_file_bytes: int = 256 * 1024 * 1024,
                 autostart: bool = True) -> None:
        self.home = home
        self.batch_size, self.flush_interval_s = batch_size, flush_interval_s
        self.max_body_bytes, self.max_file_bytes = max_body_bytes, max_file_bytes
        self.written = self.dropped = self.failed = 0
        self._queue: queue.Queue[tuple[str, PredictionRecord]] = queue.Queue(maxsize=max_queue)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._dropping = False
        self._write_error: str | None = None
        self._db: sqlite3.Connection | None = None
        if autostart:
            self.start()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="prediction log", daemon=True)
            self._thread.start()

    def log(self, record: PredictionRecord, *, sink: str = "jsonl") -> None:
        """Queue ``record`` for ``sink`` (``TrafficPolicy.log_sink``); drop it if the queue is full."""
        if sink not in SINKS:
            raise ValueError(f"unknown prediction log sink {sink!r}; expected one of {SINKS}")
        if self._closed:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait((sink, record))
        except queue.Full:
            self.dropped += 1
            if not self._dropping:
                log.warning("the prediction log's queue is full (%d records); dropping records until the "
                            "writer catches up", self._queue.maxsize)
            self._dropping = True
        else:
            self._dropping = False

    async def aclose(self) -> None:
        """Stop accepting records, write every queued one, close the files."""
        self._closed = True
        self.start()  # a logger that never started still flushes what it queued
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- the writer thread ----------------------------------------------------------------------------
    def _drain(self) -> None:
        try:
            while True:
                try:
                    first = self._queue.get(timeout=self.flush_interval_s)
                except queue.Empty:
                    if self._stopping.is_set():
                        return
                    continue
                batch = [first]
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    self._write(batch)
                except Exception:  # the writer never dies; a record it cannot encode is counted and skipped
                    log.exception("could not encode %d prediction log records", len(batch))
                    self.failed += len(batch)
        finally:
            if self._db is not None:
                self._db.close()

    def _write(self, batch: list[tuple[str, PredictionRecord]]) -> None:
        lines: dict[Path, list[bytes]] = {}
        rows: list[tuple[Any, ...]] = []
        for sink, r in batch:
            encoded = orjson.dumps(record_to_dict(r, max_body_bytes=self.max_body_bytes))
            if sink == "sqlite":
                rows.append((r.ts, r.project, r.deployment, r.request_id, r.predictor, r.model_version, r.status,
                             r.latency_ms, int(r.cache_hit), encoded.decode()))
            else:
                lines.setdefault(jsonl_path(self.home, r.project, r.deployment), []).append(encoded)
        for path, chunk in lines.items():
            self._guarded(len(chunk), self._append, path, chunk)
        if rows:
            self._guarded(len(rows), self._insert, rows)

    def _guarded(self, count: int, write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
        except (OSError, sqlite3.Error, PierError) as exc:
            self.failed += count
            if self._write_error is None:
                log.warning("cannot write the prediction log under %s (%s); records are dropped until it "
                            "works again", predictions_dir(self.home), exc)
            self._write_error = str(exc)
            return
        self.written += count
        if self._write_error is not None:
            log.info("the prediction log is written again")
        self._write_error = None

    def _append(self, path: Path, lines: list[bytes]) -> None:
        # Names become paths: only DNS labels (what the spec allows), never ``..`` or a slash.
        validate_name(path.parent.name, what="project")
        validate_name(path.name.removesuffix(".jsonl"), what="deployment")
        data = b"\n".join(lines) + b"\n"
        _create_private(path)
        if self.max_file_bytes and path.stat().st_size + len(data) > self.max_file_bytes \
                and path.stat().st_size > 0:
            os.replace(path, _rotated(path))
            _create_private(path)
        with path.open("ab") as f:
            f.write(data)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        if self._db is None:
            path = sqlite_path(self.home)
            _create_private(path)
            self._db = sqlite3.connect(path, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a log: the last batch may go with a power cut
            self._db.executescript(_SCHEMA)
        with self._db:
            self._db.executemany(_INSERT, rows)


# -- readers ----------------------------------------------------------------------------------------


def _lines_backwards(path: Path, block: int = 64 * 1024) -> Iterator[bytes]:
    """The non-empty lines of a file, last first, reading blocks from the end."""
    with path.open("rb") as f:
        position = f.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            step = min(block, position)
            position -= step
            f.seek(position)
            parts = (f.read(step) + rest).split(b"\n")
            rest = parts[0]
            yield from (line for line in reversed(parts[1:]) if line.strip())
        if rest.strip():
            yield rest


def _read_jsonl(path: Path, limit: int, since: float | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for candidate in (path, _rotated(path)):
        if not candidate.is_file():
            continue
        for line in _lines_backwards(candidate):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut short by a crash mid-write
            if since is not None and float(record.get("ts", 0)) < since:
                return found  # lines are in arrival order: everything before is older
            found.append(record)
            if len(found) >= limit:
                return found
    return found


def _read_sqlite(db: Path, project: str, deployment: str, limit: int, since: float | None
                 ) -> tuple[bool, list[dict[str, Any]]]:
    """(does the database know this deployment, its newest records first)."""
    conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0)
    try:
        known = conn.execute("SELECT 1 FROM predictions WHERE project = ? AND deployment = ? LIMIT 1",
                             (project, deployment)).fetchone() is not None
        rows = conn.execute("SELECT record FROM predictions WHERE project = ? AND deployment = ? AND ts >= ? "
                            "ORDER BY ts DESC, id DESC LIMIT ?",
                            (project, deployment, since if since is not None else float("-inf"), limit)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False, []
        raise
    finally:
        conn.close()
    return known, [orjson.loads(row[0]) for row in rows]


def read_predictions(home: Path, project: str, deployment: str, *, limit: int = 100,
                     since: float | None = None) -> list[dict[str, Any]]:
    """The last ``limit`` records of a deployment (at or after ``since``, unix seconds), oldest first,
    from both sinks; ``NotFound`` when neither holds anything for it."""
    validate_name(project, what="project")
    validate_name(deployment, what="deployment")
    path = jsonl_path(home, project, deployment)
    known = path.is_file() or _rotated(path).is_file()
    db = sqlite_path(home)
    try:
        records = _read_jsonl(path, limit, since)
        if db.is_file():
            in_db, rows = _read_sqlite(db, project, deployment, limit, since)
            known = known or in_db
            records += rows
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreBusy(f"the prediction log {db} is locked by a writer; try again") from exc
        raise ServiceUnavailable(f"cannot read the prediction log {db}: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise ServiceUnavailable(f"cannot read the prediction log of {project}/{deployment} under "
                                 f"{predictions_dir(home)}: {exc}") from exc
    if not known:
        raise NotFound(f"no prediction log for {project}/{deployment} under {predictions_dir(home)}: it is written "
                       "on the gateway's machine once the deployment sets predictionLog and a sampled request "
                       "arrives", details={"project": project, "deployment": deployment})
    records.sort(key=lambda r: float(r.get("ts", 0)))
    return records[-limit:] if limit > 0 else []
