"""Turn SQLAlchemy/driver exceptions into the platform's error tree.

Nothing raw leaves the SQL store: a locked SQLite file or a PostgreSQL lock timeout, deadlock or
serialization failure is ``StoreBusy`` (retry later); a database that cannot be reached is
``ServiceUnavailable`` naming the URL (never its password); anything else is a plain
``PierError`` that still names the database.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from modelpier.errors import InvalidInput, PierError, ServiceUnavailable, StoreBusy

# PostgreSQL SQLSTATEs meaning "someone else holds what you need; try again".
_PG_BUSY = {
    "40001": "serialization failure",
    "40P01": "deadlock detected",
    "55P03": "lock not available",
    "57014": "statement cancelled (timeout)",
}
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a wrapped driver error, if any."""
    orig = getattr(error, "orig", error)
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` means a lock or serialization conflict that a retry may resolve."""
    if sqlstate(error) in _PG_BUSY:
        return True
    text = str(getattr(error, "orig", error)).lower()
    return isinstance(error, sa_exc.OperationalError) and any(s in text for s in _SQLITE_BUSY)


def translate(error: sa_exc.SQLAlchemyError, url: str) -> PierError:
    """The ``PierError`` to raise for a SQLAlchemy error met while talking to ``url``."""
    source = getattr(error, "orig", None) or error
    lines = str(source).strip().splitlines()
    detail = lines[0] if lines else type(source).__name__
    if is_busy(error):
        reason = _PG_BUSY.get(sqlstate(error) or "", "database is locked")
        return StoreBusy(
            f"the metadata database {url} is busy ({reason}): another writer holds a lock; retry later",
            details={"database": url})
    if isinstance(error, sa_exc.TimeoutError):
        return ServiceUnavailable(
            f"no free connection to the metadata database {url} (connection pool exhausted); retry later",
            details={"database": url})
    state = sqlstate(error) or ""
    if state.startswith("08") or _is_connection_error(error):
        return ServiceUnavailable(
            f"cannot reach the metadata database {url}: {detail}", details={"database": url})
    if isinstance(error, sa_exc.DataError) or state.startswith("22"):
        return InvalidInput(f"the metadata database {url} rejected a value: {detail}")
    return PierError(f"metadata database {url} failed: {type(error).__name__}: {detail}",
                     details={"database": url})


def _is_connection_error(error: sa_exc.SQLAlchemyError) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, sa_exc.OperationalError):
        return False
    text = str(error.orig).lower()
    markers = ("connection refused", "could not connect", "connection failed", "server closed the connection",
               "unable to open database file", "timeout expired", "no route to host", "name or service")
    return any(m in text for m in markers)
