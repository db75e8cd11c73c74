"""The distribution client against a scripted registry (httpx.MockTransport): token auth, blob
skips and mounts, chunked uploads that resume where the registry says they stopped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from modelpier.errors import Unauthenticated
from modelpier.images.distribution.auth import Credentials
from modelpier.images.distribution.client import DistributionClient


class FakeRegistry:
    """A registry that wants Bearer tokens from its realm, stores chunked uploads, and can drop the
    connection on one chosen PATCH (after storing nothing of it)."""

    def __init__(self, *, drop_patch: int | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self.drop_patch = drop_patch
        self.patches = 0
        self.token_requests: list[httpx.URL] = []
        self.log: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:  # noqa: PLR0911  # one answer per route
        url = request.url
        self.log.append(f"{request.method} {url.path}")
        if url.host == "auth.example":
            return self._token(request)
        if not request.headers.get("authorization", "").startswith("Bearer tok-"):
            return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="https://auth.example/token",'
                                                                    'service="reg.example"'})
        path = url.path
        if request.method == "HEAD" and "/blobs/" in path:
            return httpx.Response(200 if path.rsplit("/", 1)[1] in self.blobs else 404)
        if request.method == "POST" and path.endswith("/blobs/uploads/"):
            if url.params.get("mount") in self.blobs:
                return httpx.Response(201)
            uid = f"u{len(self.uploads)}"
            self.uploads[uid] = b""
            return httpx.Response(202, headers={"location": f"/v2/r/blobs/uploads/{uid}?_state=s"})
        if "/blobs/uploads/" in path:
            return self._upload(request, path.rsplit("/", 1)[1])
        if request.method == "PUT" and "/manifests/" in path:
            return httpx.Response(201, headers={"docker-content-digest": "sha256:"
                                                + hashlib.sha256(request.content).hexdigest()})
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": path}]})

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request.url)
        if request.headers.get("authorization") != Credentials("u", "p").basic_header():
            return httpx.Response(401)
        return httpx.Response(200, json={"token": "tok-" + "+".join(request.url.params.get_list("scope"))})

    def _upload(self, request: httpx.Request, uid: str) -> httpx.Response:
        if request.method == "PATCH":
            self.patches += 1
            if self.patches == self.drop_patch:
                raise httpx.ReadError("connection reset", request=request)
            start = int(request.headers["content-range"].split("-")[0])
            assert start == len(self.uploads[uid]), "chunks must arrive in order"
            self.uploads[uid] += request.content
            return httpx.Response(202, headers={"location": f"/v2/r/blobs/uploads/{uid}?_state=s2",
                                                "range": f"0-{len(self.uploads[uid]) - 1}"})
        if request.method == "GET":
            return httpx.Response(204, headers={"range": f"0-{max(len(self.uploads[uid]) - 1, 0)}"})
        assert request.method == "PUT"
        assert request.url.params.get("_state"), "the upload state must be kept"
        data = self.uploads.pop(uid)
        digest = request.url.params["digest"]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID", "message": "bad"}]})
        self.blobs[digest] = data
        return httpx.Response(201)


def _client(registry: FakeRegistry, *, chunk_bytes: int = 4, creds: bool = True) -> DistributionClient:
    return DistributionClient("reg.example", credentials=Credentials("u", "p") if creds else None,
                              transport=httpx.MockTransport(registry), chunk_bytes=chunk_bytes)


def _blob(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_chunked_upload_with_token_auth_lands_whole(tmp_path: Path) -> None:
    registry = FakeRegistry()
    path, digest = _blob(tmp_path, b"0123456789abc")
    with _client(registry) as client:
        assert not client.blob_exists("r", digest)
        client.upload_blob("r", digest, path)
        assert client.blob_exists("r", digest)
    assert registry.blobs[digest] == b"0123456789abc"
    assert registry.log.count("PATCH /v2/r/blobs/uploads/u0") == 4  # 13 bytes in chunks of 4
    # One token per scope, asked for with the basic credentials, then reused.
    assert [u.params.get_list("scope") for u in registry.token_requests] == [
        ["repository:r:pull"], ["repository:r:pull,push"]]
    assert all(u.params["service"] == "reg.example" for u in registry.token_requests)


def test_an_upload_resumes_from_the_registrys_range_after_a_dropped_connection(tmp_path: Path) -> None:
    registry = FakeRegistry(drop_patch=3)
    path, digest = _blob(tmp_path, b"0123456789abc")
    with _client(registry) as client:
        client.upload_blob("r", digest, path)
    assert registry.blobs[digest] == b"0123456789abc"
    assert "GET /v2/r/blobs/uploads/u0" in registry.log  # asked where to go on


def test_a_mount_links_a_blob_the_registry_has() -> None:
    registry = FakeRegistry()
    registry.blobs["sha256:" + "a" * 64] = b"x"
    with _client(registry) as client:
        assert client.mount_blob("r", "sha256:" + "a" * 64, "base/debian") is None
        location = client.mount_blob("r", "sha256:" + "b" * 64, "base/debian")
    assert location is not None
    assert location.startswith("/v2/r/blobs/uploads/")
    mount_scope = registry.token_requests[-1].params.get_list("scope")
    assert mount_scope == ["repository:r:pull,push", "repository:base/debian:pull"]


def test_refused_credentials_are_unauthenticated_naming_the_registry() -> None:
    with _client(FakeRegistry(), creds=False) as client, \
            pytest.raises(Unauthenticated, match=r"reg\.example refused an anonymous request"):
        client.blob_exists("r", "sha256:" + "a" * 64)


def test_manifest_put_returns_its_digest() -> None:
    data = json.dumps({"schemaVersion": 2}).encode()
    with _client(FakeRegistry()) as client:
        assert client.put_manifest("r", "1", data, "application/vnd.oci.image.manifest.v1+json") == \
            "sha256:" + hashlib.sha256(data).hexdigest()
