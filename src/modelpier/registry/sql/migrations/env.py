"""Alembic environment of the registry schema.

``migrate.upgrade_to_head`` passes an open connection (already in a transaction, holding the
migration lock) in ``config.attributes["connection"]``; the ``alembic`` command line, used by
developers to autogenerate a new revision, passes ``sqlalchemy.url`` instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from modelpier.registry.sql.engine import open_engine, write_engine
from modelpier.registry.sql.migrate import check_references, sqlite_foreign_keys_off
from modelpier.registry.sql.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    # Batch mode lets later migrations alter SQLite tables (copy-and-move) with the same code.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
        check_references(connection)  # before commit: a batch migration must not orphan a row


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (alembic -x or the config) or pass a connection")
    engine = open_engine(url)
    try:
        with write_engine(engine).connect() as conn, sqlite_foreign_keys_off(conn):
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
