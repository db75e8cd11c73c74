"""Collecting unreferenced blobs (issue 13, item 7), over every backend pair (SQLite/PostgreSQL x
local/S3): old strays go, referenced and young blobs stay, and a push racing the collector never
ends with a version whose blob is gone."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.registry.test_registry_service import BACKENDS, artifact

from modelpier.errors import InvalidInput
from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.settings import load_settings


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    meta, blobs = str(request.param).split("-")
    overrides: dict[str, str] = {}
    if meta == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_database")
    if blobs == "s3":
        overrides["blob_url"] = f"s3://{request.getfixturevalue('s3_bucket')}/registry"
        overrides["s3_endpoint_url"] = request.getfixturevalue("s3_endpoint")
    reg = build_registry(load_settings(home=tmp_path / "home", user="carol", **overrides))
    yield reg
    reg.close()


def _stray(registry: Registry) -> str:
    digest, _ = registry.blobs.put_stream(iter([os.urandom(1000)]))
    return digest


def _stored(registry: Registry) -> set[str]:
    return {digest for digest, _ in registry.blobs.list_blobs()}


def test_old_unreferenced_blobs_are_collected_and_nothing_else(registry: Registry, tmp_path: Path) -> None:
    entries = registry.store_files(artifact(tmp_path, {"weights.bin": os.urandom(5000)}))
    registry.register(NewVersion(model="kept", flavor=Flavor.PYTHON, files=entries))
    stray = _stray(registry)
    assert stray in _stored(registry)
    assert registry.collect_garbage(3600) == []  # young: a push may be about to reference it
    assert registry.collect_garbage(0, now=time.time() + 5) == [stray]
    assert _stored(registry) == {e.digest for e in entries}
    registry.materialize(registry.resolve("kept"))


class _SlowCommit:
    """The metadata store, with ``create_version`` held until ``release`` is set (a push mid-commit)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.entered, self.release = inner, threading.Event(), threading.Event()

    def create_version(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(10)
        return self.inner.create_version(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_push_racing_the_collector_keeps_its_blob(registry: Registry, tmp_path: Path) -> None:
    entries = registry.store_files(artifact(tmp_path, {"weights.bin": os.urandom(5000)}))  # old and unreferenced
    slow = _SlowCommit(registry.metadata)
    registry.metadata = slow
    pushed: list[Any] = []
    push = threading.Thread(target=lambda: pushed.append(
        registry.register(NewVersion(model="racy", flavor=Flavor.PYTHON, files=entries))))
    push.start()
    assert slow.entered.wait(10)  # the push checked its blobs and is committing
    collected: list[list[str]] = []
    collector = threading.Thread(target=lambda: collected.append(registry.collect_garbage(0, now=time.time() + 5)))
    collector.start()
    collector.join(0.3)  # the collector must wait for the push, not delete under it
    slow.release.set()
    push.join(10)
    collector.join(10)
    assert not push.is_alive()
    assert not collector.is_alive()
    assert pushed
    assert collected == [[]]
    registry.metadata = slow.inner
    registry.materialize(registry.resolve("racy"))


def test_a_push_after_its_blob_was_collected_is_refused_not_broken(registry: Registry, tmp_path: Path) -> None:
    entries = registry.store_files(artifact(tmp_path, {"weights.bin": os.urandom(5000)}))
    assert len(registry.collect_garbage(0, now=time.time() + 5)) == 1
    with pytest.raises(InvalidInput, match="not uploaded first"):
        registry.register(NewVersion(model="late", flavor=Flavor.PYTHON, files=entries))
