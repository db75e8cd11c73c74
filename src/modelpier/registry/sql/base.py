"""``SqlStore``: what every SQL store shares, written once.

The registry's metadata, the control plane's deployments and the auth tables each have a store
class over the same database; each subclasses this for its engine and sessions, its retrying write
(a write that lost a race to another writer, in this process or another, runs again) and the
``guarded`` decorator that turns escaping SQLAlchemy errors into ``modelpier.errors``.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from modelpier._lib.clock import Clock, SystemClock
from modelpier.errors import StoreBusy
from modelpier.registry.sql.dberrors import is_busy, translate
from modelpier.registry.sql.engine import DEFAULT_BUSY_TIMEOUT, open_engine, safe_url, write_engine
from modelpier.registry.sql.migrate import upgrade_to_head

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# Attempts for a write that lost a race (unique violation, PostgreSQL deadlock/serialization).
MAX_ATTEMPTS = 20


class SqlStore:
    """Thread-safe; share one instance per process."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        self._clock = clock or SystemClock()
        self.url = safe_url(engine.url)

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, migrate: bool = True,
             clock: Clock | None = None) -> Self:
        """Connect to ``url``, bring its schema to the newest migration (unless ``migrate=False``)."""
        engine = open_engine(url, busy_timeout=busy_timeout)
        try:
            if migrate:
                upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock=clock)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def _write_retrying(self, work: Callable[[Session], T], what: str) -> T:
        """Run ``work`` in a write transaction, retrying when it loses a race to another writer."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self._write() as session:
                    return work(session)
            except (sa_exc.IntegrityError, sa_exc.OperationalError) as exc:
                # A SQLite "locked" error already waited the whole busy timeout: do not wait again.
                retryable = isinstance(exc, sa_exc.IntegrityError) or (is_busy(exc) and self._is_postgres)
                if not retryable:
                    raise
                if attempt == MAX_ATTEMPTS:
                    raise StoreBusy(f"{what}: lost {MAX_ATTEMPTS} races with concurrent writers to "
                                    f"{self.url}; retry later") from exc
                time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter, not crypto
        raise AssertionError("unreachable")

    @property
    def _is_postgres(self) -> bool:
        return self._engine.dialect.name == "postgresql"


S = TypeVar("S", bound=SqlStore)


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Translate SQLAlchemy errors escaping a public store method into ``modelpier.errors``."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, self.url) from exc

    return wrapper
