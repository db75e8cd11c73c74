"""Out-of-range integers in paths and bodies answer 404 or 422, never 500 (issue 13, item 5).

Ids, version and revision numbers past 2^63 used to reach SQLite (``OverflowError``) and a huge
token lifetime overflowed a datetime: each a 500 with its traceback logged twice. Against a real
``pier server`` on SQLite and on PostgreSQL, with a model version and a deployment in place so the
lookups get as far as the database.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.control.test_registry_api import upload, version_body
from tests.support.procs import ADMIN_HEADERS, control_plane

ID_MAX, COUNT_MAX = 2**31 - 1, 2**63 - 1  # the largest stored id (32-bit column) and size (64-bit)
NUMBERS = [ID_MAX, 2**31, COUNT_MAX, 2**63, 2**64, 10**30]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp(f"bounds-{request.param}")
    extra: dict[str, str] = {}
    if request.param == "postgres":
        import psycopg

        admin = request.getfixturevalue("postgres_url")
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        extra["PIER_DATABASE_URL"] = admin.rsplit("/", 1)[0] + f"/{name}"
    with control_plane(home, **extra) as url:
        with httpx.Client(base_url=f"{url}/api/v1", timeout=30, headers=ADMIN_HEADERS) as api:
            data = os.urandom(100)
            assert api.post("/models/big/versions", json=version_body(upload(api, data), len(data))).status_code == 201
            document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "d"},
                        "spec": {"predictors": [{"name": "main", "model": "big:1", "replicas": 0}]}}
            assert api.put("/projects/default/deployments/d", json=document).status_code in (200, 201)
        yield url, home


def _calls(n: int) -> list[tuple[str, str, str, dict[str, Any] | None, int]]:
    """(id, method, path, body, the largest valid value)"""
    return [
        ("revoke", "DELETE", f"/tokens/{n}", None, ID_MAX),
        ("version", "GET", f"/models/big/versions/{n}", None, ID_MAX),
        ("delete-version", "DELETE", f"/models/big/versions/{n}", None, ID_MAX),
        ("tag", "PUT", f"/models/big/versions/{n}/tags/k", {"value": "v"}, ID_MAX),
        ("untag", "DELETE", f"/models/big/versions/{n}/tags/k", None, ID_MAX),
        ("project-version", "GET", f"/projects/default/models/big/versions/{n}", None, ID_MAX),
        ("alias", "PUT", "/models/big/aliases/prod", {"version": n}, ID_MAX),
        ("revision", "GET", f"/projects/default/deployments/d/revisions/{n}", None, ID_MAX),
        ("rollback", "POST", "/projects/default/deployments/d/rollback", {"revision": n}, ID_MAX),
        ("quota", "PUT", "/projects/default/quota", {"storage_bytes": n}, COUNT_MAX),
        ("upload-offset", "PATCH", f"/blobs/uploads/{hashlib.sha256(b'x').hexdigest()[:32]}", None, COUNT_MAX),
    ]


CALLS = [pytest.param(n, *call[1:], id=f"{call[0]}-{n.bit_length()}bits") for n in NUMBERS for call in _calls(n)]


@pytest.mark.parametrize(("n", "method", "path", "body", "largest"), CALLS)
def test_out_of_range_integers_are_client_errors(server: tuple[str, Path], n: int, method: str, path: str,
                                                 body: dict[str, Any] | None, largest: int) -> None:
    url, _ = server
    headers = {**ADMIN_HEADERS, "Upload-Offset": str(n)}
    r = httpx.request(method, f"{url}/api/v1{path}", json=body, headers=headers, timeout=30)
    # Beyond the bound: refused by validation (422, naming the field). Within: whatever the lookup finds.
    allowed = {422} if n > largest else {200, 404, 409, 422}
    assert r.status_code in allowed, r.text
    assert r.status_code < 500
    assert set(r.json()) == {"error"} or r.status_code == 200


@pytest.mark.parametrize("lifetime", [1e300, 10**20, 4e9])
def test_a_token_lifetime_past_the_bound_is_refused(server: tuple[str, Path], lifetime: float) -> None:
    url, _ = server
    r = httpx.post(f"{url}/api/v1/tokens", json={"name": "huge", "expires_in_s": lifetime}, headers=ADMIN_HEADERS)
    assert r.status_code == 422, r.text
    assert "expires_in_s" in r.json()["error"]["message"]


def test_no_unexpected_error_was_logged(server: tuple[str, Path]) -> None:
    """Runs after the matrix (same module, same server): nothing reached the 500 path."""
    _, home = server
    log = (home / "server.log").read_text()
    assert "unexpected error" not in log
    assert "Traceback" not in log
