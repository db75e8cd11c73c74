"""Every job store and every cache, each against its real backend: SQLite files, a real redis-server.

``open_store`` opens a new store on the same backing data each time it is called, as a second
gateway (or the same gateway after a restart) would. Redis tests keep apart by key prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from modelpier.gateway.cache import MemoryCache, PredictionCache, RedisCache
from modelpier.gateway.jobs.redis_store import RedisJobStore
from modelpier.gateway.jobs.sqlite_store import SqliteJobStore
from modelpier.gateway.jobs.store import JobStore


@pytest.fixture(params=["sqlite", "redis"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], JobStore]:
    if request.param == "sqlite":
        path = tmp_path / "gateway" / "jobs.db"
        return lambda: SqliteJobStore(path)
    url = request.getfixturevalue("redis_url")
    prefix = f"test-jobs-{uuid.uuid4().hex[:12]}"
    return lambda: RedisJobStore(url, prefix=prefix)


@pytest.fixture(params=["memory", "redis"])
def open_cache(request: pytest.FixtureRequest) -> Callable[[], PredictionCache]:
    if request.param == "memory":
        return MemoryCache
    url = request.getfixturevalue("redis_url")
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}:"
    return lambda: RedisCache(url, prefix=prefix)
