"""Push and pull (`sdk/control_api/transfer.py`) between local stores and a real `pier server` over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modelpier.errors import NotFound, RemoteUnreachable
from modelpier.registry.domain import Flavor, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.registry.service import Registry
from modelpier.sdk.control_api import ControlClient, models
from modelpier.sdk.control_api.transfer import UploadJournal, pull, push
from modelpier.settings import load_settings
from tests.support.procs import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    BIN,
    control_plane,
    free_port,
    pier_env,
    run_pier,
    wait_until,
)

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with control_plane(tmp_path_factory.mktemp("remote-home")) as url:
        yield url


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Registry]:
    registry = build_registry(load_settings(home=tmp_path / "local"))
    yield registry
    registry.close()


def add_version(registry: Registry, name: str, files: dict[str, bytes], tmp: Path) -> str:
    folder = tmp / f"artifact-{os.urandom(4).hex()}"
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    entries = registry.store_files(folder)
    version, _ = registry.register(NewVersion(model=name, flavor=Flavor.PYTHON, files=entries,
                                              metrics={"auc": 0.9}, created_by="alice", source="train.py"))
    return version.ref


class _BreakingStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes], transport: CountingTransport) -> None:
        self.inner = inner
        self.transport = transport

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            t = self.transport
            if t.fail_after is not None and t.sent + len(chunk) > t.fail_after:
                raise httpx.WriteError("connection reset (simulated)")
            t.sent += len(chunk)
            yield chunk


class CountingTransport(httpx.HTTPTransport):
    """Counts upload bytes sent; optionally breaks the connection after ``fail_after`` bytes.

    Also records the offsets the server reported when the client asked where an upload stands.
    """

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.sent = 0
        self.fail_after = fail_after
        self.resume_offsets: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            request.stream = _BreakingStream(request.stream, self)  # type: ignore[arg-type]
        response = super().handle_request(request)
        if request.method == "GET" and "/blobs/uploads/" in request.url.path:
            response.read()
            self.resume_offsets.append(response.json()["offset"])
        return response


def test_push_then_pull_round_trips_metadata_and_bytes(local: Registry, remote: str, tmp_path: Path) -> None:
    files = {"model.bin": os.urandom(300_000), "sub/vocab.txt": b"a\nb\n"}
    ref = add_version(local, "roundtrip", files, tmp_path)
    with ControlClient(remote, token=ADMIN_TOKEN) as client:
        pushed, answer = push(local, client, ref, journal=UploadJournal(tmp_path / "j.json"), chunk_bytes=CHUNK)
    assert answer.created
    assert answer.digest == pushed.digest
    other = build_registry(load_settings(home=tmp_path / "other"))
    try:
        with ControlClient(remote, token=ADMIN_TOKEN) as client:
            pulled, created = pull(other, client, f"roundtrip:{answer.version}", chunk_bytes=CHUNK)
        assert created
        assert (pulled.digest, pulled.metrics, pulled.created_by, pulled.source) == \
            (pushed.digest, {"auc": 0.9}, "alice", "train.py")
        folder = other.materialize(pulled)
        assert {p: (folder / p).read_bytes() for p in files} == files
    finally:
        other.close()


def test_a_push_to_a_project_lands_in_its_registry_only(local: Registry, remote: str, tmp_path: Path) -> None:
    ref = add_version(local, "scoped", {"model.bin": b"abc"}, tmp_path)
    with ControlClient(remote, token=ADMIN_TOKEN) as client:
        # Even the admin cannot push into a project that does not exist: 404 naming it, nothing created.
        with pytest.raises(NotFound, match="project 'acme' does not exist"):
            push(local, client, ref, project="acme", journal=UploadJournal(tmp_path / "j.json"), chunk_bytes=CHUNK)
        assert httpx.post(f"{remote}/api/v1/projects", json={"name": "acme"}, headers=ADMIN_HEADERS).status_code == 201
        _, answer = push(local, client, ref, project="acme", journal=UploadJournal(tmp_path / "j.json"),
                         chunk_bytes=CHUNK)
        assert answer.created
        assert [m.name for m in client.send(models.list_models("acme"))] == ["scoped"]
    with ControlClient(remote, token=ADMIN_TOKEN) as default:
        assert "scoped" not in [m.name for m in default.send(models.list_models(None))]
        # Names are per project: the same name in the default project is another model, numbered apart.
        _, again = push(local, default, ref, journal=UploadJournal(tmp_path / "j.json"), chunk_bytes=CHUNK)
        assert (again.created, again.version) == (True, 1)
        assert default.send(models.get_model(None, "scoped")).project == "default"


def test_pushing_twice_is_a_no_op(local: Registry, remote: str, tmp_path: Path) -> None:
    ref = add_version(local, "twice", {"m.bin": os.urandom(200_000)}, tmp_path)
    transport = CountingTransport()
    with ControlClient(remote, token=ADMIN_TOKEN, transport=transport) as client:
        _, first = push(local, client, ref, journal=UploadJournal(tmp_path / "j.json"), chunk_bytes=CHUNK)
        sent_first = transport.sent
        _, second = push(local, client, ref, journal=UploadJournal(tmp_path / "j.json"), chunk_bytes=CHUNK)
    assert (first.created, second.created) == (True, False)
    assert first.version == second.version
    assert sent_first == 200_000
    assert transport.sent == sent_first  # the second push sent no bytes


def test_interrupted_push_resumes_from_the_servers_offset(local: Registry, remote: str, tmp_path: Path) -> None:
    size = 40 * CHUNK
    ref = add_version(local, "resume", {"big.bin": os.urandom(size)}, tmp_path)
    journal = UploadJournal(tmp_path / "journal.json")
    broken = CountingTransport(fail_after=15 * CHUNK)
    with ControlClient(remote, token=ADMIN_TOKEN, transport=broken) as client, pytest.raises(RemoteUnreachable):
        push(local, client, ref, journal=journal, chunk_bytes=CHUNK)
    assert broken.sent == 15 * CHUNK
    with httpx.Client(headers=ADMIN_HEADERS) as h:
        assert h.get(f"{remote}/api/v1/models/resume/versions/latest").status_code == 404  # nothing half-visible
    resumed = CountingTransport()
    with ControlClient(remote, token=ADMIN_TOKEN, transport=resumed) as client:
        _, answer = push(local, client, ref, journal=journal, chunk_bytes=CHUNK)
    assert answer.created
    start = resumed.resume_offsets[0]
    assert 0 < start <= 15 * CHUNK  # the server kept what reached it
    assert resumed.sent < size  # and the rest was all that went again
    assert resumed.sent + start >= size
    assert json.loads((tmp_path / "journal.json").read_text()) == {}


def test_killed_push_leaves_no_version_and_a_rerun_completes(tmp_path: Path, remote: str) -> None:
    home = tmp_path / "killhome"
    registry = build_registry(load_settings(home=home))
    try:
        ref = add_version(registry, "killed", {"huge.bin": os.urandom(48 * 1024 * 1024)}, tmp_path)
    finally:
        registry.close()
    env = pier_env(home, PIER_REGISTRY__CHUNK_BYTES=str(CHUNK))
    proc = subprocess.Popen([str(BIN / "pier"), "models", "push", ref, "--remote", remote, "-o", "json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = home / "uploads.json"

    def upload_started() -> bool:
        if proc.poll() is not None:
            return True
        try:
            upload_id = next(iter(json.loads(journal.read_text()).values()))
        except (FileNotFoundError, ValueError, StopIteration):
            return False
        r = httpx.get(f"{remote}/api/v1/blobs/uploads/{upload_id}", headers=ADMIN_HEADERS)
        return r.status_code == 200 and r.json()["offset"] > 0

    wait_until(upload_started, what="the push to have sent some bytes")
    assert proc.poll() is None, "push finished before it could be killed; make the artifact bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert httpx.get(f"{remote}/api/v1/models/killed/versions/latest", headers=ADMIN_HEADERS).status_code == 404
    done = run_pier(["models", "push", ref, "--remote", remote, "-o", "json"], home,
                    PIER_REGISTRY__CHUNK_BYTES=str(CHUNK))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] is True


def test_concurrent_pushes_get_distinct_numbers_and_equal_digests_share_one(
        tmp_path: Path, remote: str) -> None:
    homes = [tmp_path / f"h{i}" for i in range(4)]
    refs = []
    shared = os.urandom(100_000)
    for i, home in enumerate(homes):
        registry = build_registry(load_settings(home=home))
        try:
            refs.append(add_version(registry, "race", {"m.bin": os.urandom(100_000)}, tmp_path))
            if i < 2:  # two homes also hold the very same artifact
                add_version(registry, "race", {"m.bin": shared}, tmp_path)
        finally:
            registry.close()
    jobs = [(home, ref) for home, ref in zip(homes, refs, strict=True)]
    jobs += [(homes[0], "race:2"), (homes[1], "race:2")]
    pushing = threading.Event()
    pushing.set()
    def read_while_pushing() -> list[int]:
        # Readers never see a half-made version: either nothing yet, or a complete one.
        seen: list[int] = []
        with httpx.Client(base_url=f"{remote}/api/v1", headers=ADMIN_HEADERS) as client:
            while pushing.is_set():
                r = client.get("/models/race/versions/latest")
                assert r.status_code in (200, 404), r.text
                if r.status_code == 200:
                    body = r.json()
                    assert body["files"]
                    assert client.head(f"/blobs/{body['files'][0]['digest']}").status_code == 200
                    seen.append(body["version"])
        return seen

    with ThreadPoolExecutor(len(jobs) + 2) as pool:
        readers = [pool.submit(read_while_pushing) for _ in range(2)]
        results = list(pool.map(
            lambda job: run_pier(["models", "push", job[1], "--remote", remote, "-o", "json"], job[0]), jobs))
        pushing.clear()
        observed = [reader.result() for reader in readers]
    for r in results:
        assert r.returncode == 0, r.stderr
    answers = [json.loads(r.stdout) for r in results]
    distinct = answers[:4]
    assert sorted(a["version"] for a in [*distinct, answers[4]]) == [1, 2, 3, 4, 5]
    assert answers[4]["version"] == answers[5]["version"]
    assert answers[4]["digest"] == answers[5]["digest"]
    listed = httpx.get(f"{remote}/api/v1/models/race/versions", headers=ADMIN_HEADERS).json()
    assert [v["version"] for v in listed] == [1, 2, 3, 4, 5]
    assert any(observed)  # the readers overlapped the pushes
    for seen in observed:
        assert seen == sorted(seen)  # for each reader, "latest" never moved backwards


def test_unreachable_remote_is_a_clear_error_with_exit_code(tmp_path: Path) -> None:
    home = tmp_path / "h"
    registry = build_registry(load_settings(home=home))
    try:
        ref = add_version(registry, "lonely", {"m.bin": b"bytes"}, tmp_path)
    finally:
        registry.close()
    r = run_pier(["models", "push", ref, "--remote", f"http://127.0.0.1:{free_port()}"], home)
    assert r.returncode == 9
    assert "cannot reach the modelpier control plane" in r.stderr
    assert "Traceback" not in r.stderr


def test_pull_of_unknown_model_is_a_not_found(tmp_path: Path, remote: str) -> None:
    r = run_pier(["models", "pull", "nothing-here:3", "--remote", remote], tmp_path / "h")
    assert r.returncode == 4
    assert "nothing-here" in r.stderr


def test_pull_of_a_corrupted_remote_blob_stores_nothing(tmp_path: Path) -> None:
    server_home = tmp_path / "server"
    registry = build_registry(load_settings(home=server_home))
    try:
        add_version(registry, "rotten", {"m.bin": os.urandom(3 * CHUNK)}, tmp_path)
        digest = registry.resolve("rotten").files[0].digest
    finally:
        registry.close()
    blob_file = next((server_home / "blobs").rglob(digest.removeprefix("sha256:")))
    data = bytearray(blob_file.read_bytes())
    data[-10] ^= 0xFF
    blob_file.write_bytes(bytes(data))
    with control_plane(server_home) as url:
        r = run_pier(["models", "pull", "rotten", "--remote", url], tmp_path / "puller",
                     PIER_REGISTRY__CHUNK_BYTES=str(CHUNK))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error:")
    listed = run_pier(["models", "list", "-o", "json"], tmp_path / "puller", check=True)
    assert json.loads(listed.stdout) == []

