"""Database URLs and the translation of driver errors into the platform's error tree."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from modelpier.errors import InvalidInput, InvalidSpec, PierError, ServiceUnavailable, StoreBusy
from modelpier.registry.sql.dberrors import is_busy, translate
from modelpier.registry.sql.engine import parse_database_url, safe_url


class FakePgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(cls: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql://u@h/db", "postgresql+psycopg"),
    ("postgres://u@h/db", "postgresql+psycopg"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
    ("sqlite:////tmp/x.db", "sqlite"),
])
def test_database_urls_are_normalised(url: str, driver: str) -> None:
    assert parse_database_url(url).drivername == driver


def test_unsupported_database_urls_are_invalid_spec_without_the_password() -> None:
    with pytest.raises(InvalidSpec, match="not supported") as info:
        parse_database_url("mysql://root:hunter2@db/x")
    assert "hunter2" not in info.value.message
    with pytest.raises(InvalidSpec, match="does not parse"):
        parse_database_url("not a url")


def test_safe_url_drops_the_password() -> None:
    assert safe_url("postgresql+psycopg://pier:secret@db:5432/reg") == "postgresql+psycopg://pier@db:5432/reg"


def test_sqlite_locked_is_store_busy() -> None:
    error = wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database is locked"))
    assert is_busy(error)
    translated = translate(error, "sqlite:///x.db")
    assert isinstance(translated, StoreBusy)
    assert "sqlite:///x.db" in translated.message


@pytest.mark.parametrize("state", ["40001", "40P01", "55P03"])
def test_postgres_lock_conflicts_are_store_busy(state: str) -> None:
    error = wrapped(sa_exc.OperationalError, FakePgError("conflict", state))
    assert isinstance(translate(error, "postgresql+psycopg://db/x"), StoreBusy)


def test_connection_failures_are_service_unavailable() -> None:
    error = wrapped(sa_exc.OperationalError, FakePgError("connection failed: Connection refused", "08006"))
    translated = translate(error, "postgresql+psycopg://pier@db/x")
    assert isinstance(translated, ServiceUnavailable)
    assert translated.message.startswith("cannot reach the metadata database postgresql+psycopg://pier@db/x")


def test_bad_values_are_invalid_input_and_the_rest_a_pier_error() -> None:
    assert isinstance(translate(wrapped(sa_exc.DataError, FakePgError("bad", "22P02")), "db"), InvalidInput)
    other = translate(wrapped(sa_exc.ProgrammingError, FakePgError("no table", "42P01")), "db")
    assert type(other) is PierError
    assert "no table" in other.message
