"""The registry's use cases, one suite over every backend pair (metadata x blobs).

SQLite and a real PostgreSQL server for metadata; a local folder and a real S3-compatible server
(moto) for blobs. The last test runs a real `pier server` on PostgreSQL + S3 and pushes/pulls.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.support.procs import ADMIN_TOKEN, control_plane

import modelpier
from modelpier.errors import InvalidInput, NotFound
from modelpier.registry.domain import FileEntry, Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.sdk.control_api import ControlClient
from modelpier.sdk.control_api.transfer import UploadJournal, pull, push
from modelpier.settings import Settings, load_settings

BACKENDS = ["sqlite-local", "sqlite-s3", "postgres-local", "postgres-s3"]


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    meta, blobs = str(request.param).split("-")
    overrides: dict[str, str] = {}
    if meta == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_database")
    if blobs == "s3":
        overrides["blob_url"] = f"s3://{request.getfixturevalue('s3_bucket')}/registry"
        overrides["s3_endpoint_url"] = request.getfixturevalue("s3_endpoint")
    return load_settings(home=tmp_path / "home", user="carol", **overrides)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = build_registry(settings)
    yield reg
    reg.close()


def artifact(tmp: Path, files: dict[str, bytes]) -> Path:
    folder = tmp / f"art-{os.urandom(4).hex()}"
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def test_register_resolve_and_materialize(registry: Registry, tmp_path: Path) -> None:
    files = {"weights.bin": os.urandom(50_000), "conf/config.json": b'{"a": 1}'}
    entries = registry.store_files(artifact(tmp_path, files))
    v1, created = registry.register(NewVersion(model="churn", flavor=Flavor.PYTHON, files=entries))
    assert (v1.version, created, v1.size) == (1, True, sum(len(d) for d in files.values()))
    folder = registry.materialize(registry.resolve("churn"))
    assert {rel: (folder / rel).read_bytes() for rel in files} == files
    assert registry.materialize(v1) == folder  # cached


def test_sdk_save_and_load_through_each_backend(registry: Registry, settings: Settings) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(x, y)
    saved = modelpier.save_model("iris", model, input_example=x[:2], registry=registry, settings=settings)
    registry.set_alias("iris", "production", saved.version)
    loaded = modelpier.load_model("iris:production", registry=registry, settings=settings)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert saved.created_by == "carol"


def test_shared_blobs_are_kept_until_the_last_version_goes(registry: Registry, tmp_path: Path) -> None:
    shared = os.urandom(10_000)
    a = registry.store_files(artifact(tmp_path, {"shared.bin": shared, "a.txt": b"a"}))
    b = registry.store_files(artifact(tmp_path, {"shared.bin": shared, "b.txt": b"b"}))
    va, _ = registry.register(NewVersion(model="dedup", flavor=Flavor.PYTHON, files=a))
    vb, _ = registry.register(NewVersion(model="dedup", flavor=Flavor.PYTHON, files=b))
    shared_digest = next(f.digest for f in va.files if f.path == "shared.bin")
    only_a = next(f.digest for f in va.files if f.path == "a.txt")
    registry.delete_version("dedup", va.version)
    assert registry.blobs.exists(shared_digest)
    assert not registry.blobs.exists(only_a)
    registry.delete_model("dedup")
    assert not registry.blobs.exists(shared_digest)
    with pytest.raises(NotFound):
        registry.get_version("dedup", vb.version)


def test_register_without_uploaded_blobs_is_refused_and_nothing_is_written(
        registry: Registry, tmp_path: Path) -> None:
    entries = registry.store_files(artifact(tmp_path, {"m.bin": b"x"}))
    registry.blobs.delete(entries[0].digest)
    with pytest.raises(InvalidInput, match="not uploaded"):
        registry.register(NewVersion(model="ghost", flavor=Flavor.PYTHON, files=entries))
    with pytest.raises(NotFound):
        registry.resolve("ghost")


def test_tags_on_models_and_versions(registry: Registry, tmp_path: Path) -> None:
    entries = registry.store_files(artifact(tmp_path, {"m.bin": b"y"}))
    registry.register(NewVersion(model="tagged", flavor=Flavor.PYTHON, files=entries))
    registry.set_tag("tagged", "team", "ml")
    registry.set_tag("tagged:1", "stage", "qa")
    assert registry.get_model("tagged").tags == {"team": "ml"}
    assert registry.resolve("tagged:1").tags == {"stage": "qa"}
    registry.delete_tag("tagged:1", "stage")
    assert registry.resolve("tagged:1").tags == {}


def test_a_failed_materialize_leaves_no_cached_folder(registry: Registry, tmp_path: Path) -> None:
    entries = registry.store_files(artifact(tmp_path, {"a.bin": b"a" * 100, "b.bin": b"b" * 100}))
    version, _ = registry.register(NewVersion(model="halfway", flavor=Flavor.PYTHON, files=entries))
    registry.blobs.delete(entries[1].digest)  # the second file vanished from the store
    with pytest.raises(NotFound):
        registry.materialize(version)
    cached = [p for p in registry.cache_dir.rglob("*") if p.is_file()] if registry.cache_dir.exists() else []
    assert cached == []


@pytest.mark.postgres
@pytest.mark.s3
def test_push_and_pull_against_a_server_on_postgres_and_s3(
        tmp_path: Path, postgres_database: str, s3_bucket: str, s3_endpoint: str) -> None:
    local = build_registry(load_settings(home=tmp_path / "local"))
    try:
        entries = local.store_files(artifact(tmp_path, {"w.bin": os.urandom(300_000)}))
        version, _ = local.register(NewVersion(model="scaled", flavor=Flavor.PYTHON, files=entries))
        with control_plane(tmp_path / "server", PIER_DATABASE_URL=postgres_database,
                           PIER_BLOB_URL=f"s3://{s3_bucket}/reg", PIER_S3_ENDPOINT_URL=s3_endpoint) as url, \
                ControlClient(url, token=ADMIN_TOKEN) as client:
            _, answer = push(local, client, version.ref, journal=UploadJournal(tmp_path / "j.json"),
                             chunk_bytes=64 * 1024)
            assert answer.created
            again = build_registry(load_settings(home=tmp_path / "again"))
            try:
                pulled, created = pull(again, client, "scaled", chunk_bytes=64 * 1024)
                assert created
                assert pulled.digest == version.digest
            finally:
                again.close()
    finally:
        local.close()


def test_a_project_resolves_its_own_models_then_the_shared_catalog(registry: Registry, tmp_path: Path) -> None:
    catalog = registry.store_files(artifact(tmp_path, {"m.bin": b"catalog"}))
    own = registry.store_files(artifact(tmp_path, {"m.bin": b"acme's own"}))
    shared, _ = registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=catalog))
    registry.register(NewVersion(model="wine", flavor=Flavor.PYTHON, files=catalog))
    mine, _ = registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=own), project="acme")
    assert registry.resolve_shared("iris:1", project="acme").digest == mine.digest  # its own wins
    assert registry.resolve_shared("wine", project="acme").model == "wine"  # else the catalog's
    with pytest.raises(NotFound, match="model 'iris' has no version 2"):
        registry.resolve_shared("iris:2", project="acme")  # its own iris, even without that version
    with pytest.raises(NotFound, match="model 'ghost' does not exist in project 'acme'"):
        registry.resolve_shared("ghost", project="acme")
    with pytest.raises(NotFound, match="model 'wine' does not exist in project 'acme'"):
        registry.resolve("wine", project="acme")  # an explicit project is strict
    beta = Registry(registry.metadata, registry.blobs, registry.cache_dir, project="beta")
    assert beta.resolve("iris:1").digest == shared.digest  # a registry's own project (PIER_PROJECT), then default
    with pytest.raises(NotFound):
        beta.get_model("iris")  # but beta itself holds no iris


def test_declared_file_sizes_must_be_the_blobs_own(registry: Registry, tmp_path: Path) -> None:
    entry = registry.store_files(artifact(tmp_path, {"m.bin": b"twelve bytes"}))[0]
    lying = FileEntry(entry.path, entry.digest, 1)  # a small size would slip past a storage quota
    with pytest.raises(InvalidInput, match=r"declares 1 bytes, but its blob .* holds 12"):
        registry.register(NewVersion(model="iris", flavor=Flavor.PYTHON, files=(lying,)))
    assert registry.list_models() == []
