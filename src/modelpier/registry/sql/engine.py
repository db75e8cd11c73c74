"""Engines for the metadata database: SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite is set up for several processes sharing one file: WAL journal (readers never block the
writer), a busy timeout (writers wait for each other instead of failing at once), foreign keys on
(deletes cascade). SQLAlchemy emits ``BEGIN`` itself so a write transaction can ask for
``BEGIN IMMEDIATE``: it takes the write lock before its first read, so a read-then-write
transaction never fails half-way on a lock upgrade. On PostgreSQL the same timeout bounds lock
waits (``lock_timeout``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from modelpier.errors import InvalidSpec

DEFAULT_BUSY_TIMEOUT = 30.0
# Execution option read by the SQLite "begin" hook; see ``write_engine``.
_BEGIN_OPTION = "modelpier_sqlite_begin"


def parse_database_url(url: str) -> URL:
    """Parse and normalise a database URL; plain ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidSpec(f"database URL {url!r} does not parse: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise InvalidSpec(
        f"database URL {safe_url(parsed)!r} is not supported: use sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/DB")


def safe_url(url: URL | str) -> str:
    """The URL without its password, fit for messages and logs."""
    u = url if isinstance(url, URL) else make_url(url)
    # URL.set(password=None) would keep the password ("None" means unchanged there); rebuild instead.
    bare = URL.create(u.drivername, username=u.username, host=u.host, port=u.port, database=u.database,
                      query=u.query)
    return bare.render_as_string(hide_password=False)


def open_engine(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine for ``url``; ``busy_timeout`` (seconds) bounds how long a writer waits for a lock."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout)
    return _postgres_engine(parsed, busy_timeout)


def write_engine(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take SQLite's write lock when they begin."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        # The embedded default lives under PIER_HOME, which may not exist on a first run.
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout})
    timeout_ms = max(int(busy_timeout * 1000), 0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module; the "begin" hook emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL sync is durable across application crashes and much faster.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: URL, busy_timeout: float) -> Engine:
    lock_timeout_ms = max(int(busy_timeout * 1000), 1)
    return create_engine(
        url,
        pool_pre_ping=True,  # survive a database restart without handing out dead connections
        connect_args={
            "connect_timeout": 10,
            "options": f"-c lock_timeout={lock_timeout_ms}",
        },
    )
