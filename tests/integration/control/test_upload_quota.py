"""Blob uploads count against the project's storage quota as they arrive, and expire (issue 13, item 7).

An editor of a project with a 1000-byte quota stored 25 MiB through ``/api/v1/blobs/uploads``:
uploads were charged only once a version referenced them. Against a real ``pier server``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.support.procs import ADMIN_HEADERS, control_plane, wait_until

QUOTA = 1000


@contextmanager
def _server(home: Path, upload_ttl_s: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A control plane with a project ``team`` of storage quota 1000 bytes, and a token of its editor."""
    with control_plane(home, PIER_CONTROL__UPLOAD_TTL_S=upload_ttl_s) as url:
        def admin(method: str, path: str, body: dict[str, object]) -> httpx.Response:
            r = httpx.request(method, f"{url}/api/v1{path}", headers=ADMIN_HEADERS, timeout=30, json=body)
            assert r.status_code < 300, r.text
            return r
        admin("POST", "/projects", {"name": "team"})
        token = admin("POST", "/tokens", {"name": "ed", "user": "ed"}).json()["token"]
        admin("PUT", "/projects/team/members/ed", {"role": "editor"})
        admin("PUT", "/projects/team/quota", {"storage_bytes": QUOTA})
        yield url, {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with _server(tmp_path_factory.mktemp("upload-quota"), "3600") as server:
        yield server


def _begin(url: str, editor: dict[str, str]) -> str:
    r = httpx.post(f"{url}/api/v1/blobs/uploads", params={"project": "team"}, headers=editor, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["upload_id"])


def _append(url: str, editor: dict[str, str], upload: str, offset: int, body: bytes | Iterator[bytes]
            ) -> httpx.Response:
    return httpx.patch(f"{url}/api/v1/blobs/uploads/{upload}", content=body, timeout=60,
                       headers={**editor, "Upload-Offset": str(offset)})


def _offset(url: str, editor: dict[str, str], upload: str) -> int:
    return int(httpx.get(f"{url}/api/v1/blobs/uploads/{upload}", headers=editor, timeout=30).json()["offset"])


def test_an_upload_past_the_quota_is_refused_as_it_arrives(api: tuple[str, dict[str, str]]) -> None:
    url, editor = api
    upload = _begin(url, editor)
    declared = _append(url, editor, upload, 0, b"x" * (25 * 1024 * 1024))  # with Content-Length: refused at once
    assert declared.status_code == 403, declared.text
    assert declared.json()["error"]["details"]["exceeded"][0]["quota"] == "storage_bytes"
    streamed = _append(url, editor, upload, 0, iter([b"x" * 1024 * 1024] * 25))  # chunked: refused as it arrives
    assert streamed.status_code == 403, streamed.text
    assert _offset(url, editor, upload) == 0
    httpx.delete(f"{url}/api/v1/blobs/uploads/{upload}", headers=editor, timeout=30)


def test_unfinished_uploads_hold_quota_until_aborted(api: tuple[str, dict[str, str]]) -> None:
    url, editor = api
    first, second = _begin(url, editor), _begin(url, editor)
    assert _append(url, editor, first, 0, b"a" * 600).status_code == 200
    refused = _append(url, editor, second, 0, b"b" * 600)  # 600 pending + 600 > 1000
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["exceeded"][0]["would_use"] == 1200
    assert httpx.delete(f"{url}/api/v1/blobs/uploads/{first}", headers=editor, timeout=30).status_code == 204
    assert _append(url, editor, second, 0, b"b" * 600).status_code == 200  # released by the abort
    httpx.delete(f"{url}/api/v1/blobs/uploads/{second}", headers=editor, timeout=30)


def test_an_abandoned_upload_expires_and_releases_its_quota(tmp_path: Path) -> None:
    with _server(tmp_path, "1") as (url, editor):  # control.upload_ttl_s = 1
        _expires(url, editor)


def _expires(url: str, editor: dict[str, str]) -> None:
    abandoned = _begin(url, editor)
    assert _append(url, editor, abandoned, 0, b"a" * 900).status_code == 200
    wait_until(lambda: httpx.get(f"{url}/api/v1/blobs/uploads/{abandoned}", headers=editor).status_code == 404,
               timeout=15, what="the abandoned upload to expire")
    fresh = _begin(url, editor)
    assert _append(url, editor, fresh, 0, b"b" * 900).status_code == 200
    httpx.delete(f"{url}/api/v1/blobs/uploads/{fresh}", headers=editor, timeout=30)


def test_an_upload_into_a_project_the_caller_cannot_write_is_refused(api: tuple[str, dict[str, str]]) -> None:
    url, editor = api
    r = httpx.post(f"{url}/api/v1/blobs/uploads", params={"project": "elsewhere"}, headers=editor, timeout=30)
    assert r.status_code == 404, r.text


def test_the_blob_collector_is_exposed_to_admins_only(api: tuple[str, dict[str, str]]) -> None:
    url, editor = api
    data = b"never referenced by a version"
    upload = _begin(url, editor)
    assert _append(url, editor, upload, 0, data).status_code == 200
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.put(f"{url}/api/v1/blobs/uploads/{upload}", params={"digest": digest}, headers=editor,
                     timeout=30).status_code == 201
    assert httpx.post(f"{url}/api/v1/blobs/gc", headers=editor, timeout=30).status_code == 403
    kept = httpx.post(f"{url}/api/v1/blobs/gc", headers=ADMIN_HEADERS, timeout=30)  # within the 1 h grace
    assert kept.status_code == 200, kept.text
    assert digest not in kept.json()["deleted"]
    collected = httpx.post(f"{url}/api/v1/blobs/gc", params={"grace_s": 0}, headers=ADMIN_HEADERS, timeout=30)
    assert digest in collected.json()["deleted"]
    assert httpx.head(f"{url}/api/v1/blobs/{digest}", headers=editor, timeout=30).status_code == 404
