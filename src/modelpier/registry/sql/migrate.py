"""Apply the registry's Alembic migrations from code, at start-up; no ``alembic.ini`` needed.

Several processes may start at once on one database (``pier up`` starts several parts). On
PostgreSQL the upgrade runs in one transaction holding a transaction-level advisory lock, so the
second process waits, then finds the schema at head and does nothing. On SQLite the transaction
begins with ``BEGIN IMMEDIATE``, which serialises the same way (DDL is transactional on both).
Should a race still slip through, an upgrade that fails while the database turns out to be at head
counts as done.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc

from modelpier.registry.sql.dberrors import translate
from modelpier.registry.sql.engine import open_engine, safe_url, write_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant naming "modelpier registry schema" among advisory locks (a signed int64).
ADVISORY_LOCK_KEY = 0x6D70_7265_6769_7374  # "mpregist"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the registry's migrations, built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the registry has at least one migration"
    return head


def current_revision(target: str | Engine) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    engine = open_engine(target) if isinstance(target, str) else target
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
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
    config = alembic_config()
    try:
        with write_engine(engine).connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except sa_exc.SQLAlchemyError as exc:
        try:
            if current_revision(engine) == head_revision():
                return  # another process won the race and finished the upgrade
        except Exception:  # noqa: S110 - report the original failure, not this re-check's
            pass
        raise translate(exc, safe_url(engine.url)) from exc
