"""Apply the registry's Alembic migrations from code, at start-up; no ``alembic.ini`` needed.

Several processes may start at once on one database (``pier up`` starts several parts). On
PostgreSQL the upgrade runs in one transaction holding a transaction-level advisory lock, so the
second process waits, then finds the schema at head and does nothing. On SQLite the transaction
begins with ``BEGIN IMMEDIATE``, which serialises the same way (DDL is transactional on both).
Should a race still slip through, an upgrade that fails while the database turns out to be at head
counts as done. On SQLite the upgrade runs with foreign keys off (``sqlite_foreign_keys_off``), so a
batch migration that recreates a table does not cascade deletes into the tables referring to it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    from alembic.config import Config

from modelpier.errors import PierError
from modelpier.registry.sql.dberrors import translate
from modelpier.registry.sql.engine import open_engine, safe_url, write_engine

log = logging.getLogger("modelpier.registry.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant naming "modelpier registry schema" among advisory locks (a signed int64).
ADVISORY_LOCK_KEY = 0x6D70_7265_6769_7374  # "mpregist"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the registry's migrations, built in code."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    return config


_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


@cache
def head_revision() -> str:
    """The newest migration, read from the migration files without importing Alembic.

    Every process that opens the store asks this; importing Alembic to answer it cost each
    replica and CLI command ~0.2 s of start-up. The head is the revision no other one names as
    its ``down_revision`` (a test checks this agrees with Alembic's own answer).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict((key, value) for key, value in _REVISION.findall(path.read_text()))
        if "revision" in found:
            revisions.add(found["revision"])
            if "down_revision" in found:
                parents.add(found["down_revision"])
    heads = revisions - parents
    assert len(heads) == 1, f"the migrations must form one chain, heads: {sorted(heads)}"
    return heads.pop()


def current_revision(target: str | Engine) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    engine = open_engine(target) if isinstance(target, str) else target
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, safe_url(engine.url)) from exc
    finally:
        if isinstance(target, str):
            engine.dispose()


def upgrade_to_head(target: str | Engine) -> None:
    """Bring the database at ``target`` (a URL or an engine) to the newest schema; idempotent."""
    engine = open_engine(target) if isinstance(target, str) else target
    try:
        if current_revision(engine) == head_revision():
            return  # the common start-up: nothing to do, and no write lock taken
        _upgrade_locked(engine)
    finally:
        if isinstance(target, str):
            engine.dispose()


def _upgrade_locked(engine: Engine) -> None:
    try:
        with alembic_quiet(), write_engine(engine).connect() as conn, sqlite_foreign_keys_off(conn), conn.begin():
            from alembic import command  # its plugins log at INFO as it loads

            config = alembic_config()
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        log.debug("migrated %s to schema %s", safe_url(engine.url), head_revision())
    except sa_exc.SQLAlchemyError as exc:
        try:
            if current_revision(engine) == head_revision():
                return  # another process won the race and finished the upgrade
        except Exception:  # noqa: S110 - report the original failure, not this re-check's
            pass
        raise translate(exc, safe_url(engine.url)) from exc


@contextmanager
def alembic_quiet() -> Iterator[None]:
    """Alembic's per-step INFO lines ("Running upgrade ... -> ...", a dozen on a first start) at debug.

    A first ``pier up`` is no place for them; its warnings and errors still show. With debug logging
    on (``PIER_LOG_LEVEL=debug``) they show as they are.
    """
    alembic = logging.getLogger("alembic")
    if logging.getLogger().isEnabledFor(logging.DEBUG) or alembic.level > logging.INFO:
        yield
        return
    previous = alembic.level
    alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic.setLevel(previous)


@contextmanager
def sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """On SQLite, foreign keys off while migrating (before the transaction begins), on again after.

    Batch migrations recreate a table (create a copy, move the rows, drop the old one, rename): with
    foreign keys on, dropping the old table would cascade deletes into every table that refers to
    it. SQLite's own 12-step ALTER procedure turns them off first; the pragma takes effect only
    outside a transaction, so it goes to the DBAPI connection, which runs in autocommit mode.
    ``check_references`` then verifies, before commit, that no row was left pointing at nothing.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        dbapi.execute("PRAGMA foreign_keys = ON")  # the connection goes back to the pool


def check_references(conn: Connection) -> None:
    """SQLite: refuse to commit a migration that left a row with a dangling reference (``env.py``
    calls it inside the migration's transaction)."""
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise PierError(f"the migration left {len(broken)} row(s) with dangling references, first: {broken[0]}")
