"""Every operation's error answers in the OpenAPI document (``control.openapi_errors``), derived in one place."""

from __future__ import annotations

from typing import Any

import pytest

from modelpier.control.api.openapi_errors import ENVELOPE, document_errors, error_responses, statuses_of


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("get", "/healthz", {400, 422}),
    ("post", "/apis/authentication.k8s.io/v1/tokenreviews", {400, 422}),
    ("get", "/api/v1/projects", {400, 401, 403, 422, 423}),
    ("post", "/api/v1/projects", {400, 401, 403, 409, 422, 423}),
    ("get", "/api/v1/projects/{project}/models/{name}", {400, 401, 403, 404, 422, 423}),
    ("delete", "/api/v1/projects/{project}/models/{name}", {400, 401, 403, 404, 409, 422, 423}),
    ("head", "/api/v1/blobs/{digest}", {400, 401, 403, 404, 422, 423}),
])
def test_statuses_follow_from_the_route(method: str, path: str, statuses: set[int]) -> None:
    assert statuses_of(method, path) == statuses


def test_every_error_answer_carries_the_envelope_and_the_codes_of_the_error_tree() -> None:
    schema: dict[str, Any] = {"paths": {"/api/v1/blobs/uploads/{upload_id}": {"patch": {"responses": {
        "200": {"description": "OK"},
        "422": {"description": "Validation Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}},
        **{str(k): v for k, v in error_responses(413).items()},
    }}}}}
    responses = document_errors(schema)["paths"]["/api/v1/blobs/uploads/{upload_id}"]["patch"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "404", "409", "413", "422", "423"}
    for status, response in responses.items():
        if status != "200":
            assert response["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{ENVELOPE}"}
    assert "not_found" in responses["404"]["description"]
    assert "invalid_spec" in responses["422"]["description"]
    assert "headers_too_large" not in responses["413"]["description"]  # 431 is its own status
    assert "payload_too_large" in responses["413"]["description"]
    assert schema["components"]["schemas"][ENVELOPE]["required"] == ["error"]


def test_the_control_planes_document_declares_every_path_parameter(tmp_path: Any) -> None:
    import re

    from modelpier.control.platform import build_platform
    from modelpier.settings import Settings

    app = build_platform(Settings(home=tmp_path), None, announce_admin_token=lambda _token: None).app
    document = app.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert {"400", "422"} <= set(operation["responses"]), (method, path)
