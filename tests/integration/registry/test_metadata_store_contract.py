"""The ``MetadataStore`` contract, run against SQLite and a real PostgreSQL server.

Every implementation must pass this same suite: numbering, idempotent pushes, references,
aliases, tags, deletes, search, concurrency (threads and processes), migrations, and errors that
come out as ``modelpier.errors`` with messages naming what was missing.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from tests.support.procs import free_port

from modelpier.auth.sql.tables import metadata as auth_metadata
from modelpier.control.store.tables import metadata as control_metadata
from modelpier.errors import Conflict, Forbidden, InvalidInput, InvalidName, NotFound, ServiceUnavailable, StoreBusy
from modelpier.registry.digests import digest_bytes
from modelpier.registry.domain import FileEntry, Flavor, ModelVersion, NewVersion
from modelpier.registry.sql import SqlMetadataStore, current_revision, head_revision, open_engine, upgrade_to_head
from modelpier.registry.sql.migrate import alembic_config
from modelpier.registry.sql.tables import metadata
from modelpier.spec.names import ModelRef
from modelpier.spec.signature import Signature, TensorSpec


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pier.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def metadata_store(database_url: str) -> Iterator[SqlMetadataStore]:
    store = SqlMetadataStore.open(database_url)
    yield store
    store.close()


def new_version(model: str, content: bytes = b"weights", **fields: Any) -> NewVersion:
    files = fields.pop("files", (FileEntry("model.bin", digest_bytes(content), len(content)),))
    return NewVersion(model=model, flavor=fields.pop("flavor", Flavor.SKLEARN), files=files, **fields)


def push(store: SqlMetadataStore, model: str, content: bytes, **fields: Any) -> ModelVersion:
    version, created = store.create_version(new_version(model, content, **fields))
    assert created
    return version


# -- models -------------------------------------------------------------------------------------------


def test_ensure_model_creates_once_and_then_returns_it(metadata_store: SqlMetadataStore) -> None:
    created = metadata_store.ensure_model("iris", description="first")
    again = metadata_store.ensure_model("iris", description="ignored")
    assert (created.name, again.description) == ("iris", "first")
    assert created.created_at == again.created_at
    assert created.created_at.tzinfo is not None
    assert (again.latest_version, again.version_count, again.aliases, again.tags) == (None, 0, {}, {})


def test_unknown_model_is_not_found_naming_it(metadata_store: SqlMetadataStore) -> None:
    for call in (lambda: metadata_store.get_model("nope"), lambda: metadata_store.list_versions("nope"),
                 lambda: metadata_store.resolve(ModelRef.parse("nope:1"))):
        with pytest.raises(NotFound, match="model 'nope' does not exist"):
            call()


def test_update_model_changes_the_description(metadata_store: SqlMetadataStore) -> None:
    before = metadata_store.ensure_model("iris")
    after = metadata_store.update_model("iris", description="flowers")
    assert after.description == "flowers"
    assert after.updated_at >= before.updated_at
    assert metadata_store.get_model("iris").description == "flowers"


def test_list_and_search_models(metadata_store: SqlMetadataStore) -> None:
    for name in ("wine", "iris", "iris-big", "digits"):
        metadata_store.ensure_model(name)
    push(metadata_store, "iris", b"a")
    push(metadata_store, "iris", b"b")
    assert [m.name for m in metadata_store.list_models()] == ["digits", "iris", "iris-big", "wine"]
    assert [m.name for m in metadata_store.list_models(search="IRIS")] == ["iris", "iris-big"]
    assert metadata_store.list_models(search="%") == []  # LIKE wildcards are escaped
    iris = next(m for m in metadata_store.list_models() if m.name == "iris")
    assert (iris.latest_version, iris.version_count) == (2, 2)


# -- projects -----------------------------------------------------------------------------------------


def test_names_are_unique_per_project(metadata_store: SqlMetadataStore) -> None:
    mine = push(metadata_store, "iris", b"default weights")
    theirs, created = metadata_store.create_version(new_version("iris", b"acme weights"), project="acme")
    assert created
    assert (mine.version, theirs.version) == (1, 1)  # one model each, numbered apart
    assert metadata_store.get_model("iris").project == "default"
    assert metadata_store.get_model("iris", project="acme").project == "acme"
    assert metadata_store.resolve(ModelRef.parse("iris:1"), project="acme").digest == theirs.digest
    metadata_store.set_alias("iris", "production", 1, project="acme")
    metadata_store.set_model_tag("iris", "team", "acme", project="acme")
    assert metadata_store.get_model("iris").aliases == {}
    assert metadata_store.get_model("iris").tags == {}
    assert [m.project for m in metadata_store.list_models()] == ["acme", "default"]  # every project
    assert [m.project for m in metadata_store.list_models(project="acme")] == ["acme"]
    metadata_store.delete_model("iris", project="acme")
    assert metadata_store.get_version("iris", 1).digest == mine.digest  # the other project's is untouched


def test_another_projects_model_is_absent_like_a_missing_one(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "secret", b"s")
    calls = (lambda: metadata_store.get_model("secret", project="acme"),
             lambda: metadata_store.list_versions("secret", project="acme"),
             lambda: metadata_store.resolve(ModelRef.parse("secret:1"), project="acme"),
             lambda: metadata_store.set_alias("secret", "prod", 1, project="acme"),
             lambda: metadata_store.delete_model("secret", project="acme"))
    for call in calls:
        with pytest.raises(NotFound, match=r"^model 'secret' does not exist in project 'acme'$"):
            call()
    with pytest.raises(NotFound, match=r"^model 'nothing' does not exist in project 'acme'$"):
        metadata_store.get_model("nothing", project="acme")


def test_storage_counts_each_blob_of_a_project_once(metadata_store: SqlMetadataStore) -> None:
    a, b = (FileEntry("a.bin", digest_bytes(b"aaaaa"), 5), FileEntry("b.bin", digest_bytes(b"bbb"), 3))
    metadata_store.create_version(new_version("iris", files=(a,)), project="acme")
    assert metadata_store.storage_bytes("acme") == 5
    metadata_store.create_version(new_version("iris", files=(a, b)), project="acme")  # a is shared
    assert metadata_store.storage_bytes("acme") == 8
    _, created = metadata_store.create_version(new_version("iris", files=(a, b)), project="acme")  # a re-push
    assert not created
    metadata_store.create_version(new_version("wine", files=(b,)), project="acme")  # b again, another model
    assert metadata_store.storage_bytes("acme") == 8
    assert metadata_store.storage_bytes("default") == 0  # each project counts what it references
    metadata_store.create_version(new_version("iris", files=(a,)))
    assert metadata_store.storage_bytes("default") == 5


def test_admission_sees_stored_and_added_bytes_and_a_refusal_writes_nothing(
        metadata_store: SqlMetadataStore) -> None:
    a, b = (FileEntry("a.bin", digest_bytes(b"aaaaa"), 5), FileEntry("b.bin", digest_bytes(b"bbb"), 3))
    asked: list[tuple[int, int]] = []

    def admit(stored: int, added: int) -> None:
        asked.append((stored, added))
        if stored + added > 6:
            raise Forbidden("project quota exceeded")

    metadata_store.create_version(new_version("iris", files=(a,)), project="acme", admit=admit)
    with pytest.raises(Forbidden):
        metadata_store.create_version(new_version("iris", files=(a, b)), project="acme", admit=admit)
    with pytest.raises(Forbidden):
        metadata_store.create_version(new_version("wine", files=(b, FileEntry("c", digest_bytes(b"c"), 9))),
                                      project="acme", admit=admit)
    assert asked == [(0, 5), (5, 3), (5, 12)]  # only b is new in the second push: a is stored
    assert [v.version for v in metadata_store.list_versions("iris", project="acme")] == [1]
    assert [m.name for m in metadata_store.list_models(project="acme")] == ["iris"]  # no empty "wine"
    # An identical re-push adds nothing and is not asked about, even at the limit.
    again, created = metadata_store.create_version(new_version("iris", files=(a,)), project="acme", admit=admit)
    assert (again.version, created, len(asked)) == (1, False, 3)
    after, _ = metadata_store.create_version(new_version("iris", b"next"), project="acme")
    assert after.version == 2  # a refused push used up no number


def test_racing_pushes_cannot_overrun_a_storage_quota(metadata_store: SqlMetadataStore) -> None:
    """Threads push distinct 10-byte versions into one project at once; the quota has room for 4.

    ``admit`` runs inside the write transaction under the project's storage lock: a check before
    the write would let every thread see room for one more.
    """
    threads = 10
    start = threading.Barrier(threads)

    def admit(stored: int, added: int) -> None:
        time.sleep(0.01)  # widen the window a check-then-write would race in
        if stored + added > 40:
            raise Forbidden("project quota exceeded")

    def work(i: int) -> bool:
        start.wait()
        try:
            metadata_store.create_version(new_version(f"m{i % 3}", f"weight-{i:03d}".encode()), project="acme",
                                          admit=admit)
        except Forbidden:
            return False
        return True

    with ThreadPoolExecutor(threads) as pool:
        admitted = list(pool.map(work, range(threads)))
    assert sum(admitted) == 4
    assert metadata_store.storage_bytes("acme") == 40


# -- versions -----------------------------------------------------------------------------------------


def test_versions_are_numbered_from_one_per_model(metadata_store: SqlMetadataStore) -> None:
    assert [push(metadata_store, "iris", c).version for c in (b"1", b"2", b"3")] == [1, 2, 3]
    assert push(metadata_store, "wine", b"1").version == 1  # same bytes, other model: its own numbering
    assert [v.version for v in metadata_store.list_versions("iris")] == [1, 2, 3]


def test_same_manifest_digest_returns_the_existing_version(metadata_store: SqlMetadataStore) -> None:
    first = push(metadata_store, "iris", b"weights")
    again, created = metadata_store.create_version(new_version("iris", b"weights", description="other"))
    assert not created
    assert again == first
    assert push(metadata_store, "iris", b"new weights").version == 2  # no number was used up


def test_a_pulled_version_keeps_its_number_and_the_next_one_follows_it(metadata_store: SqlMetadataStore) -> None:
    pulled, created = metadata_store.create_version(new_version("iris", b"second", number=2))
    assert (pulled.version, created) == (2, True)
    assert metadata_store.resolve(ModelRef.parse("iris")).version == 2
    assert metadata_store.get_model("iris").latest_version == 2
    again, created = metadata_store.create_version(new_version("iris", b"second", number=2))
    assert (again, created) == (pulled, False)
    assert push(metadata_store, "iris", b"third").version == 3  # after the kept number, not 1
    first, _ = metadata_store.create_version(new_version("iris", b"first", number=1))  # a gap can be filled
    assert [v.version for v in metadata_store.list_versions("iris")] == [1, 2, 3]
    assert push(metadata_store, "iris", b"fourth").version == 4
    assert first.version == 1


def test_a_kept_number_held_by_other_content_is_a_conflict_naming_both_digests(
        metadata_store: SqlMetadataStore) -> None:
    here = push(metadata_store, "iris", b"local")
    other = new_version("iris", b"remote", number=1)
    with pytest.raises(Conflict) as caught:
        metadata_store.create_version(other)
    assert here.digest in caught.value.message
    assert other.digest in caught.value.message
    assert "iris:1" in caught.value.message
    assert [v.digest for v in metadata_store.list_versions("iris")] == [here.digest]  # nothing written
    assert push(metadata_store, "iris", b"next").version == 2  # no number was used up


def test_a_version_round_trips_every_field(metadata_store: SqlMetadataStore) -> None:
    signature = Signature(inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),),
                          outputs=(TensorSpec(name="y", datatype="INT64", shape=(-1,)),))
    files = (FileEntry("model/weights.bin", digest_bytes(b"w"), 1), FileEntry("MLmodel", digest_bytes(b"m"), 1))
    new = new_version(
        "iris", files=files, flavor=Flavor.ONNX, signature=signature, input_example=[[5.1, 3.5, 1.4, 0.2]],
        metrics={"accuracy": 0.97, "n": 3}, params={"C": "1.0"}, tags={"team": "ml", "stage.x/y": "1"},
        description="first cut", environment={"python": "3.11", "requirements": ["numpy==2.0"]},
        created_by="alice", source="file:///tmp/train.py")
    created, was_created = metadata_store.create_version(new)
    assert was_created
    stored = metadata_store.get_version("iris", 1)
    assert stored == created
    assert stored.files == tuple(sorted(files, key=lambda f: f.path))
    assert (stored.digest, stored.size) == (new.digest, 2)
    assert stored.signature == signature
    assert stored.input_example == [[5.1, 3.5, 1.4, 0.2]]
    assert stored.metrics == {"accuracy": 0.97, "n": 3.0}
    assert (stored.params, stored.tags) == ({"C": "1.0"}, {"team": "ml", "stage.x/y": "1"})
    assert (stored.flavor, stored.description, stored.created_by) == (Flavor.ONNX, "first cut", "alice")
    assert stored.environment == {"python": "3.11", "requirements": ["numpy==2.0"]}
    assert (stored.source, stored.aliases, stored.ref) == ("file:///tmp/train.py", (), "iris:1")
    assert stored.created_at.utcoffset() == UTC.utcoffset(None)


def test_version_without_signature_or_example(metadata_store: SqlMetadataStore) -> None:
    stored = push(metadata_store, "iris", b"w")
    assert (stored.signature, stored.input_example) == (None, None)


# -- references ---------------------------------------------------------------------------------------


def test_resolve_by_number_alias_and_latest(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1")
    push(metadata_store, "iris", b"2")
    metadata_store.set_alias("iris", "production", 1)
    assert metadata_store.resolve(ModelRef.parse("iris:2")).version == 2
    assert metadata_store.resolve(ModelRef.parse("iris:production")).version == 1
    assert metadata_store.resolve(ModelRef.parse("iris")).version == 2
    assert metadata_store.resolve(ModelRef.parse("iris:latest")).version == 2


def test_resolve_not_found_messages_name_what_is_missing(metadata_store: SqlMetadataStore) -> None:
    metadata_store.ensure_model("iris")
    with pytest.raises(NotFound, match="model 'iris' has no versions yet"):
        metadata_store.resolve(ModelRef.parse("iris"))
    push(metadata_store, "iris", b"1")
    push(metadata_store, "iris", b"2")
    with pytest.raises(NotFound, match=r"model 'iris' has no version 7; versions: 1, 2"):
        metadata_store.resolve(ModelRef.parse("iris:7"))
    with pytest.raises(NotFound, match=r"model 'iris' has no alias 'staging'; it has no aliases"):
        metadata_store.resolve(ModelRef.parse("iris:staging"))
    metadata_store.set_alias("iris", "production", 2)
    with pytest.raises(NotFound, match=r"no alias 'staging'; aliases: production") as info:
        metadata_store.resolve(ModelRef.parse("iris:staging"))
    assert info.value.details == {"model": "iris", "alias": "staging"}
    with pytest.raises(NotFound, match="has no version 9"):
        metadata_store.get_version("iris", 9)


# -- aliases ------------------------------------------------------------------------------------------


def test_aliases_move_between_versions(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1")
    push(metadata_store, "iris", b"2")
    assert metadata_store.set_alias("iris", "production", 1).aliases == ("production",)
    metadata_store.set_alias("iris", "staging", 1)
    assert metadata_store.get_version("iris", 1).aliases == ("production", "staging")
    moved = metadata_store.set_alias("iris", "production", 2)
    assert (moved.version, moved.aliases) == (2, ("production",))
    assert metadata_store.get_version("iris", 1).aliases == ("staging",)
    assert metadata_store.get_model("iris").aliases == {"production": 2, "staging": 1}


def test_alias_to_a_missing_version_is_not_found(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1")
    with pytest.raises(NotFound, match="has no version 3; versions: 1"):
        metadata_store.set_alias("iris", "production", 3)


def test_delete_alias(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1")
    metadata_store.set_alias("iris", "production", 1)
    metadata_store.delete_alias("iris", "production")
    assert metadata_store.get_model("iris").aliases == {}
    with pytest.raises(NotFound, match="has no alias 'production'"):
        metadata_store.delete_alias("iris", "production")


# -- tags ---------------------------------------------------------------------------------------------


def test_model_tags_set_overwrite_delete(metadata_store: SqlMetadataStore) -> None:
    metadata_store.ensure_model("iris")
    metadata_store.set_model_tag("iris", "team", "ml")
    assert metadata_store.set_model_tag("iris", "team", "data").tags == {"team": "data"}
    metadata_store.set_model_tag("iris", "task", "classification")
    assert metadata_store.delete_model_tag("iris", "team").tags == {"task": "classification"}
    assert metadata_store.get_model("iris").tags == {"task": "classification"}
    with pytest.raises(NotFound, match="has no tag 'team'"):
        metadata_store.delete_model_tag("iris", "team")


def test_version_tags_set_overwrite_delete(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1", tags={"origin": "nb"})
    assert metadata_store.set_version_tag("iris", 1, "origin", "ci").tags == {"origin": "ci"}
    metadata_store.set_version_tag("iris", 1, "reviewed", "yes")
    assert metadata_store.delete_version_tag("iris", 1, "origin").tags == {"reviewed": "yes"}
    assert metadata_store.get_version("iris", 1).tags == {"reviewed": "yes"}
    with pytest.raises(NotFound, match="iris:1 has no tag 'origin'"):
        metadata_store.delete_version_tag("iris", 1, "origin")



def test_the_image_built_from_a_version_is_recorded_and_replaced(metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1")
    assert metadata_store.get_version("iris", 1).image is None
    first = "127.0.0.1:5000/iris@sha256:" + "a" * 64
    assert metadata_store.set_version_image("iris", 1, first).image == first
    second = "ghcr.io/acme/iris@sha256:" + "b" * 64
    metadata_store.set_version_image("iris", 1, second)
    assert metadata_store.get_version("iris", 1).image == second
    assert metadata_store.set_version_image("iris", 1, None).image is None
    with pytest.raises(NotFound):
        metadata_store.set_version_image("iris", 2, first)

# -- deletes and blob references ---------------------------------------------------------------------


def test_delete_version_removes_its_aliases_and_never_reuses_its_number(
        metadata_store: SqlMetadataStore) -> None:
    push(metadata_store, "iris", b"1")
    push(metadata_store, "iris", b"2")
    metadata_store.set_alias("iris", "production", 2)
    metadata_store.set_alias("iris", "staging", 1)
    deleted = metadata_store.delete_version("iris", 2)
    assert (deleted.version, deleted.aliases) == (2, ("production",))
    model = metadata_store.get_model("iris")
    assert (model.aliases, model.latest_version, model.version_count) == ({"staging": 1}, 1, 1)
    with pytest.raises(NotFound, match="no version 2; versions: 1"):
        metadata_store.get_version("iris", 2)
    # A number names one artifact forever: "iris:2" must not come back as something else.
    assert push(metadata_store, "iris", b"3").version == 3


def test_delete_model_removes_everything(metadata_store: SqlMetadataStore) -> None:
    shared = digest_bytes(b"shared")
    push(metadata_store, "iris", b"1", tags={"a": "b"})
    push(metadata_store, "iris", b"2")
    metadata_store.set_alias("iris", "production", 1)
    metadata_store.set_model_tag("iris", "team", "ml")
    push(metadata_store, "wine", b"shared")
    assert metadata_store.count_blob_references(shared) == 1
    deleted = metadata_store.delete_model("iris")
    assert [v.version for v in deleted] == [1, 2]
    with pytest.raises(NotFound):
        metadata_store.get_model("iris")
    assert metadata_store.count_blob_references(digest_bytes(b"1")) == 0
    assert metadata_store.count_blob_references(shared) == 1
    assert push(metadata_store, "iris", b"1").version == 1  # a new model starts over
    assert metadata_store.get_model("iris").tags == {}


def test_count_blob_references_counts_files_across_models(metadata_store: SqlMetadataStore) -> None:
    blob = digest_bytes(b"common")
    files = (FileEntry("a.bin", blob, 6), FileEntry("b.bin", blob, 6))
    push(metadata_store, "iris", b"", files=files)
    push(metadata_store, "wine", b"common")
    assert metadata_store.count_blob_references(blob) == 3
    assert metadata_store.count_blob_references(digest_bytes(b"nothing")) == 0
    with pytest.raises(InvalidInput):
        metadata_store.count_blob_references("md5:abc")


# -- validation ---------------------------------------------------------------------------------------


def test_invalid_input_is_rejected_before_touching_the_database(metadata_store: SqlMetadataStore) -> None:
    with pytest.raises(InvalidName):
        metadata_store.ensure_model("Not_A_Label")
    push(metadata_store, "iris", b"1")
    with pytest.raises(InvalidName):
        metadata_store.set_alias("iris", "latest", 1)
    with pytest.raises(InvalidName):
        metadata_store.set_model_tag("iris", "bad key!", "x")
    with pytest.raises(InvalidInput, match="metric 'loss'"):
        metadata_store.create_version(new_version("iris", b"2", metrics={"loss": math.nan}))
    with pytest.raises(InvalidInput, match="input_example"):
        metadata_store.create_version(new_version("iris", b"2", input_example=object()))
    with pytest.raises(InvalidInput, match="relative POSIX path"):
        metadata_store.create_version(new_version("iris", files=(FileEntry("../x", digest_bytes(b"x"), 1),)))
    with pytest.raises(InvalidInput, match="versions are numbered from 1"):
        metadata_store.get_version("iris", 0)
    assert metadata_store.get_model("iris").version_count == 1


# -- concurrency ----------------------------------------------------------------------------------------


def _check_race_outcome(results: list[tuple[int, str, bool]], distinct: int) -> None:
    """Distinct digests got the distinct numbers 1..N (no gap, no duplicate); equal digests one number."""
    by_digest: dict[str, set[int]] = {}
    for number, digest, _ in results:
        by_digest.setdefault(digest, set()).add(number)
    assert all(len(numbers) == 1 for numbers in by_digest.values()), by_digest
    assert sorted(n for numbers in by_digest.values() for n in numbers) == list(range(1, distinct + 1))
    created = [digest for _, digest, was_created in results if was_created]
    assert sorted(created) == sorted(by_digest)  # each digest created exactly once


def test_concurrent_threads_get_distinct_consecutive_numbers(metadata_store: SqlMetadataStore) -> None:
    threads, per_thread = 8, 4
    start = threading.Barrier(threads)

    def work(worker: int) -> list[tuple[int, str, bool]]:
        start.wait()
        out = []
        for j in range(per_thread):
            for content in (f"{worker}-{j}".encode(), b"shared"):
                version, created = metadata_store.create_version(new_version("race", content))
                out.append((version.version, version.digest, created))
        return out

    with ThreadPoolExecutor(threads) as pool:
        results = [r for rs in pool.map(work, range(threads)) for r in rs]
    _check_race_outcome(results, threads * per_thread + 1)
    assert [v.version for v in metadata_store.list_versions("race")] == list(range(1, threads * per_thread + 2))


_WORKER = """
import json, sys
from modelpier.registry.digests import digest_bytes
from modelpier.registry.domain import FileEntry, Flavor, NewVersion
from modelpier.registry.sql import SqlMetadataStore

url, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

def ready(word):
    print(word, flush=True)
    sys.stdin.readline()  # wait for the test's "go", so all processes race

ready("started")
store = SqlMetadataStore.open(url)  # every process migrates the same fresh database at once
ready("opened")
out = []
for j in range(count):
    for content in (f"{worker}-{j}".encode(), b"shared"):
        new = NewVersion(model="race", flavor=Flavor.PYTHON,
                         files=(FileEntry("m.bin", digest_bytes(content), len(content)),))
        version, created = store.create_version(new)
        out.append([version.version, version.digest, created])
store.close()
print(json.dumps(out), flush=True)
"""


def _release(procs: list[subprocess.Popen[str]], expect: str) -> None:
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == expect, f"worker said {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def test_concurrent_processes_migrate_and_number_consistently(database_url: str) -> None:
    workers, per_worker = 3, 4
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, database_url, str(w), str(per_worker)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    try:
        _release(procs, "started")
        _release(procs, "opened")
        results: list[tuple[int, str, bool]] = []
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            results += [(n, d, c) for n, d, c in json.loads(out.strip().splitlines()[-1])]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    _check_race_outcome(results, workers * per_worker + 1)
    assert current_revision(database_url) == head_revision()


# -- migrations -----------------------------------------------------------------------------------------


def test_migrating_twice_is_a_no_op_and_the_schema_matches_the_mappings(
        metadata_store: SqlMetadataStore, database_url: str) -> None:
    push(metadata_store, "iris", b"1")
    upgrade_to_head(database_url)
    command.upgrade(alembic_config(database_url), "head")  # Alembic's own path, through env.py
    assert current_revision(database_url) == head_revision() == "0007"
    assert metadata_store.get_version("iris", 1).version == 1
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            # One migration chain for the whole database: the control plane's tables live there too.
            assert compare_metadata(context, [metadata, control_metadata, auth_metadata]) == []  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _alter(database_url: str, statement: str) -> None:
    from sqlalchemy import text

    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["at start-up", "alembic command"])
def test_upgrading_from_0003_keeps_every_row_and_scopes_names_to_projects(database_url: str, how: str) -> None:
    command.upgrade(alembic_config(database_url), "0003")
    # The current store writes the old rows: 0003's models table has the same columns; versions lacks
    # only `image` (0006), lent to it while the rows are written and taken back before the upgrade.
    _alter(database_url, "ALTER TABLE versions ADD COLUMN image TEXT")
    old = SqlMetadataStore.open(database_url, migrate=False)
    try:
        first = push(old, "iris", b"1", tags={"team": "ml"})
        push(old, "iris", b"2")
        old.set_alias("iris", "production", 2)
        old.set_model_tag("iris", "owner", "alice")
        old.ensure_model("scoped", project="acme")
        old.create_version(new_version("scoped", b"s"), project="acme")
    finally:
        old.close()
    _alter(database_url, "ALTER TABLE versions DROP COLUMN image")
    if how == "at start-up":
        upgrade_to_head(database_url)  # what SqlMetadataStore.open does
    else:
        command.upgrade(alembic_config(database_url), "head")  # a developer's `alembic upgrade head`
    assert current_revision(database_url) == head_revision()
    store = SqlMetadataStore.open(database_url)
    try:
        # Versions, files, tags and aliases all survived the models table being rebuilt.
        iris = store.get_model("iris")
        assert (iris.latest_version, iris.aliases, iris.tags) == (2, {"production": 2}, {"owner": "alice"})
        assert store.get_version("iris", 1) == first
        assert store.resolve(ModelRef.parse("scoped:1"), project="acme").version == 1
        assert store.storage_bytes("default") == 2
        # The new constraint: the same name in another project is another model.
        assert push(store, "scoped", b"d").version == 1
        # Foreign keys still cascade (SQLite: they were switched off only during the upgrade).
        store.delete_model("iris")
        assert store.count_blob_references(first.files[0].digest) == 0
    finally:
        store.close()


# -- errors ---------------------------------------------------------------------------------------------


def test_a_locked_sqlite_database_is_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "pier.db"
    store = SqlMetadataStore.open(f"sqlite:///{path}", busy_timeout=0.2)
    push(store, "iris", b"1")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
        with pytest.raises(StoreBusy, match=r"is busy \(database is locked\).*retry later"):
            store.create_version(new_version("iris", b"2"))
        with pytest.raises(StoreBusy):
            store.set_alias("iris", "production", 1)
        assert store.get_version("iris", 1).version == 1  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert push(store, "iris", b"2").version == 2
    store.close()


def test_an_unreachable_postgres_is_service_unavailable_without_the_password() -> None:
    url = f"postgresql+psycopg://pier:s3cret@127.0.0.1:{free_port()}/pier"
    with pytest.raises(ServiceUnavailable, match=r"cannot reach the metadata database") as info:
        SqlMetadataStore.open(url)
    assert "pier@127.0.0.1" in info.value.message
    assert "s3cret" not in info.value.message


def test_a_version_can_be_relocked_keeping_its_artifact(metadata_store: SqlMetadataStore) -> None:
    v1 = push(metadata_store, "iris", b"w", environment={"python": "3.11.2"})
    relocked = metadata_store.set_version_environment("iris", 1, {"python": "3.11.2", "lock": {"python": "3.11"}})
    assert (relocked.digest, relocked.files) == (v1.digest, v1.files)
    assert metadata_store.get_version("iris", 1).environment == {"python": "3.11.2", "lock": {"python": "3.11"}}
    with pytest.raises(NotFound):
        metadata_store.set_version_environment("iris", 2, {})
    with pytest.raises(InvalidInput):
        metadata_store.set_version_environment("iris", 1, {"x": float("nan")})
