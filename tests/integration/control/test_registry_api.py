"""The registry over HTTP: a real `pier server` process, driven with httpx, good and bad paths."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.procs import ADMIN_HEADERS, control_plane

CHUNK_LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("server-home")
    with control_plane(home, PIER_CONTROL__MAX_UPLOAD_REQUEST_BYTES=str(CHUNK_LIMIT)) as url, \
            httpx.Client(base_url=f"{url}/api/v1", timeout=30, headers=ADMIN_HEADERS) as client:
        yield client


def upload(api: httpx.Client, data: bytes, *, chunk: int = 256 * 1024) -> str:
    upload_id = api.post("/blobs/uploads").json()["upload_id"]
    offset = 0
    while offset < len(data):
        r = api.patch(f"/blobs/uploads/{upload_id}", content=data[offset:offset + chunk],
                      headers={"Upload-Offset": str(offset)})
        assert r.status_code == 200, r.text
        offset = r.json()["offset"]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = api.put(f"/blobs/uploads/{upload_id}", params={"digest": digest})
    assert r.status_code == 201, r.text
    return digest


def version_body(digest: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"flavor": "sklearn", "files": [{"path": "model.joblib", "digest": digest, "size": size}],
            "signature": {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
                          "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}]},
            "input_example": [[5.1, 3.5, 1.4, 0.2]], "metrics": {"acc": 0.97}, "params": {"C": "1.0"},
            "created_by": "tester", "source": "train.py", **extra}


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert "Traceback" not in r.text
    return dict(body["error"])


def test_register_is_idempotent_by_digest_and_numbers_versions(api: httpx.Client) -> None:
    a, b = os.urandom(3000), os.urandom(5000)
    da, db = upload(api, a), upload(api, b)
    r1 = api.post("/models/api-iris/versions", json=version_body(da, len(a)))
    assert r1.status_code == 201
    assert (r1.json()["version"], r1.json()["created"]) == (1, True)
    again = api.post("/models/api-iris/versions", json=version_body(da, len(a)))
    assert again.status_code == 200
    assert (again.json()["version"], again.json()["created"]) == (1, False)
    r2 = api.post("/models/api-iris/versions", json=version_body(db, len(b)))
    assert r2.json()["version"] == 2
    v = api.get("/models/api-iris/versions/1").json()
    assert v["signature"]["inputs"][0]["datatype"] == "FP32"
    assert v["created_by"] == "tester"
    assert v["size"] == len(a)


def test_blob_download_streams_the_uploaded_bytes(api: httpx.Client) -> None:
    data = os.urandom(700_000)
    digest = upload(api, data)
    assert api.head(f"/blobs/{digest}").headers["content-length"] == str(len(data))
    assert api.get(f"/blobs/{digest}").content == data


def test_aliases_tags_and_latest(api: httpx.Client) -> None:
    data = os.urandom(1000)
    digest = upload(api, data)
    api.post("/models/tagged/versions", json=version_body(digest, len(data)))
    data2 = os.urandom(1000)
    api.post("/models/tagged/versions", json=version_body(upload(api, data2), len(data2)))
    assert api.put("/models/tagged/aliases/production", json={"version": 1}).json()["aliases"] == ["production"]
    assert api.get("/models/tagged/versions/production").json()["version"] == 1
    assert api.get("/models/tagged/versions/latest").json()["version"] == 2
    api.put("/models/tagged/aliases/production", json={"version": 2})
    assert api.get("/models/tagged/versions/production").json()["version"] == 2
    assert api.put("/models/tagged/tags/team", json={"value": "fraud"}).json()["tags"] == {"team": "fraud"}
    r = api.put("/models/tagged/versions/1/tags/stage", json={"value": "qa"})
    assert r.json()["tags"] == {"stage": "qa"}
    assert api.delete("/models/tagged/versions/1/tags/stage").status_code == 204
    assert api.get("/models/tagged/versions/1").json()["tags"] == {}
    model = api.get("/models/tagged").json()
    assert (model["latest_version"], model["aliases"], model["version_count"]) == (2, {"production": 2}, 2)
    assert [m["name"] for m in api.get("/models", params={"search": "tagg"}).json()] == ["tagged"]


def test_delete_version_and_model(api: httpx.Client) -> None:
    data = os.urandom(1000)
    digest = upload(api, data)
    api.post("/models/doomed/versions", json=version_body(digest, len(data)))
    assert api.delete("/models/doomed/versions/1").status_code == 204
    assert api.get("/models/doomed/versions/1").status_code == 404
    assert api.head(f"/blobs/{digest}").status_code == 404  # no other version used it
    assert api.delete("/models/doomed").status_code == 204
    assert api.get("/models/doomed").status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "fragment"), [
    ("get", "/models/Bad_Name", None, 422, "invalid_name", "DNS-1123"),
    ("get", "/models/nope", None, 404, "not_found", "nope"),
    ("get", "/models/nope/versions/3", None, 404, "not_found", "nope"),
    ("get", "/models/api-iris/versions/99", None, 404, "not_found", "99"),
    ("get", "/models/api-iris/versions/no-such-alias", None, 404, "not_found", "no-such-alias"),
    ("get", "/models/api-iris/versions/Bad", None, 422, "invalid_reference", "Bad"),
    ("put", "/models/api-iris/aliases/production", {"version": 99}, 404, "not_found", "99"),
    ("put", "/models/api-iris/aliases/Prod", {"version": 1}, 422, "invalid_name", "alias"),
    ("put", "/models/api-iris/aliases/latest", {"version": 1}, 422, "invalid_name", "reserved"),
    ("put", "/models/api-iris/aliases/prod", {"version": 0}, 422, "invalid_input", "version"),
    ("put", "/models/api-iris/tags/bad%20key", {"value": "x"}, 422, "invalid_name", "tag key"),
    ("post", "/models/api-iris/versions", {"flavor": "tensorflow", "files": []}, 422, "invalid_input", "flavor"),
    ("post", "/models/api-iris/versions", {"files": []}, 422, "invalid_input", "flavor"),
    ("get", "/blobs/sha256:xyz", None, 400, "invalid_input", "sha256:<64"),
    ("get", "/blobs/sha256:" + "0" * 64, None, 404, "not_found", "sha256"),
    ("get", "/blobs/uploads/doesnotexist", None, 404, "not_found", "doesnotexist"),
    ("get", "/no/such/route", None, 404, "not_found", "Not Found"),
])
def test_bad_requests_get_a_4xx_envelope_naming_the_problem(
        api: httpx.Client, method: str, path: str, body: Any, status: int, code: str, fragment: str) -> None:
    r = api.request(method.upper(), path, json=body)
    assert r.status_code == status, r.text
    err = error_of(r)
    assert err["code"] == code
    assert fragment in err["message"]


def test_malformed_json_is_a_422_not_a_500(api: httpx.Client) -> None:
    r = api.post("/models/api-iris/versions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert error_of(r)["code"] == "invalid_input"


def test_bad_signature_names_the_field(api: httpx.Client) -> None:
    data = os.urandom(100)
    body = version_body(upload(api, data), len(data))
    body["signature"]["inputs"][0]["datatype"] = "FLOAT"
    r = api.post("/models/api-iris/versions", json=body)
    assert r.status_code == 422
    assert "signature.inputs.0.datatype" in error_of(r)["message"]


def test_version_whose_blobs_were_not_uploaded_is_refused_and_not_created(api: httpx.Client) -> None:
    missing = "sha256:" + hashlib.sha256(b"never uploaded").hexdigest()
    r = api.post("/models/ghost/versions", json=version_body(missing, 14))
    assert r.status_code == 400
    assert "were not uploaded" in error_of(r)["message"]
    assert api.get("/models/ghost/versions/latest").status_code == 404


@pytest.mark.parametrize("path", ["../escape", "/abs", "a/../b", "a//b", ".pier-complete"])
def test_file_paths_that_could_escape_the_version_folder_are_refused(api: httpx.Client, path: str) -> None:
    data = os.urandom(100)
    body = version_body(upload(api, data), len(data))
    body["files"][0]["path"] = path
    r = api.post("/models/escape/versions", json=body)
    assert r.status_code == 400
    assert path in error_of(r)["message"]


def test_upload_with_wrong_digest_is_refused_and_nothing_is_stored(api: httpx.Client) -> None:
    data = os.urandom(4000)
    upload_id = api.post("/blobs/uploads").json()["upload_id"]
    api.patch(f"/blobs/uploads/{upload_id}", content=data, headers={"Upload-Offset": "0"})
    claimed = "sha256:" + hashlib.sha256(b"other bytes").hexdigest()
    r = api.put(f"/blobs/uploads/{upload_id}", params={"digest": claimed})
    assert r.status_code == 422
    assert error_of(r)["code"] == "digest_mismatch"
    assert api.head(f"/blobs/{claimed}").status_code == 404
    real = "sha256:" + hashlib.sha256(data).hexdigest()
    assert api.head(f"/blobs/{real}").status_code == 404


def test_truncated_upload_is_a_digest_mismatch(api: httpx.Client) -> None:
    data = os.urandom(4000)
    upload_id = api.post("/blobs/uploads").json()["upload_id"]
    api.patch(f"/blobs/uploads/{upload_id}", content=data[:3000], headers={"Upload-Offset": "0"})
    r = api.put(f"/blobs/uploads/{upload_id}", params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()})
    assert r.status_code == 422
    assert error_of(r)["code"] == "digest_mismatch"


def test_chunk_at_wrong_offset_is_a_conflict_naming_the_expected_offset(api: httpx.Client) -> None:
    upload_id = api.post("/blobs/uploads").json()["upload_id"]
    api.patch(f"/blobs/uploads/{upload_id}", content=b"x" * 100, headers={"Upload-Offset": "0"})
    r = api.patch(f"/blobs/uploads/{upload_id}", content=b"y" * 100, headers={"Upload-Offset": "50"})
    assert r.status_code == 409
    assert "100" in error_of(r)["message"]
    assert api.get(f"/blobs/uploads/{upload_id}").json()["offset"] == 100


def test_missing_or_negative_offset_header_is_a_422(api: httpx.Client) -> None:
    upload_id = api.post("/blobs/uploads").json()["upload_id"]
    assert api.patch(f"/blobs/uploads/{upload_id}", content=b"x").status_code == 422
    r = api.patch(f"/blobs/uploads/{upload_id}", content=b"x", headers={"Upload-Offset": "-1"})
    assert r.status_code == 422


def test_oversized_chunk_is_a_413_and_the_upload_stays_usable(api: httpx.Client) -> None:
    upload_id = api.post("/blobs/uploads").json()["upload_id"]
    r = api.patch(f"/blobs/uploads/{upload_id}", content=b"z" * (CHUNK_LIMIT + 1), headers={"Upload-Offset": "0"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"
    assert api.get(f"/blobs/uploads/{upload_id}").json()["offset"] == 0
    digest = upload(api, b"small and fine")
    assert api.head(f"/blobs/{digest}").status_code == 200


def test_openapi_document_lists_the_registry(api: httpx.Client) -> None:
    spec = httpx.get(str(api.base_url).rstrip("/").removesuffix("/api/v1") + "/openapi.json").json()
    assert "/api/v1/models/{name}/versions" in spec["paths"]
    assert "/api/v1/blobs/uploads/{upload_id}" in spec["paths"]


def test_server_keeps_serving_after_bad_requests(api: httpx.Client, tmp_path: Path) -> None:
    for _ in range(3):
        api.get("/models/Bad_Name")
        api.post("/models/x/versions", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert api.get("/models").status_code == 200


def test_the_api_docs_page_needs_no_internet_and_no_token(api: httpx.Client) -> None:
    root = str(api.base_url).removesuffix("/api/v1/")
    page = httpx.get(f"{root}/docs", timeout=10)  # no token: the page and its assets are public
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    js = httpx.get(f"{root}/docs/static/swagger-ui-bundle.js", timeout=10)
    assert js.status_code == 200
    assert len(js.content) > 100_000
    assert httpx.get(f"{root}/docs/static/swagger-ui.css", timeout=10).headers["content-type"].startswith("text/css")
    assert httpx.get(f"{root}/docs/static/nope.js", timeout=10).status_code == 404
    assert httpx.get(f"{root}/redoc", timeout=10).status_code in {401, 404}  # no second, CDN-loaded page


def test_a_version_is_relocked_over_http(api: httpx.Client) -> None:
    data = os.urandom(1200)
    digest = upload(api, data)
    assert api.post("/models/api-lock/versions", json=version_body(digest, len(data))).status_code == 201
    missing = api.get("/models/api-lock/versions/1/lock")
    assert missing.status_code == 404
    assert "pier models lock" in error_of(missing)["message"]
    hashed = "sha256:" + "1" * 64
    body = {"python": "3.11.4", "packages": [{"name": "Scikit_Learn", "version": "1.5.2", "hashes": [hashed]}]}
    r = api.put("/models/api-lock/versions/latest/lock", json=body)
    assert r.status_code == 200, r.text
    lock = api.get("/models/api-lock/versions/1/lock").json()
    assert lock["packages"] == [{"name": "scikit-learn", "version": "1.5.2", "hashes": [hashed]}]
    assert lock["digest"] == r.json()["environment"]["lock"]["digest"]
    bad = api.put("/models/api-lock/versions/1/lock",
                  json={"python": "3.11", "packages": [{"name": "numpy", "version": "1", "hashes": ["md5:x"]}]})
    assert bad.status_code == 400
    assert "sha256" in error_of(bad)["message"]
