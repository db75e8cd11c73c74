"""The error answers of every control-plane operation, added to its OpenAPI document in one place. Pure.

FastAPI documents what a route declares: its success, and a 422 whose schema (``HTTPValidationError``)
is not even what the server sends, since ``control.errors`` answers every failure with the one
envelope ``{"error": {"code", "message", "details"}}``. Client generators and schemathesis then
meet answers the document does not have. ``document_errors`` derives them from what every route
shares, naming the error classes (and their codes) of ``errors.py`` that map to each status:

- 400: a malformed request (two ``Authorization`` headers, a body that is not what the route reads);
- 401 and 403: every route that is not public (``control.policy``);
- 404: every route with a path parameter (a missing resource, or a project of another tenant);
- 409: every write;
- 422: parameters or body that do not validate;
- 423: every route of the database (all but the public ones), while it is locked.

A route adds what is its own with ``responses=error_responses(413, ...)``; each documented error
status gets the envelope as its schema.
"""

from __future__ import annotations

import re
from typing import Any

from modelpier.control.api.policy import PUBLIC_ROUTES, SAFE_METHODS
from modelpier.errors import ERROR_HTTP_STATUS

ENVELOPE = "ErrorEnvelope"
_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one error envelope of the platform API.",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "Short snake_case word a client may switch on."},
            "message": {"type": "string", "description": "What went wrong, for a person."},
            "details": {"type": "object", "description": "Machine-readable particulars."},
        },
    }},
}
_REF = {"$ref": f"#/components/schemas/{ENVELOPE}"}
# Statuses the platform's own handlers produce outside the error tree (control/api/errors.py).
_TRANSPORT = {400: "a request that does not parse", 422: "parameters or a body that do not validate"}


def _codes(status: int) -> list[str]:
    return sorted({cls.code for cls, mapped in ERROR_HTTP_STATUS.items() if mapped == status})


def error_response(status: int) -> dict[str, Any]:
    """One documented error answer: the envelope, and the error codes of the tree mapped to ``status``."""
    codes = _codes(status)
    reasons = [_TRANSPORT[status]] if status in _TRANSPORT else []
    if codes:
        reasons.append("codes: " + ", ".join(codes))
    return {"description": "Error; " + "; ".join(reasons or ["see the message"]),
            "content": {"application/json": {"schema": _REF}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own error statuses (``document_errors`` adds the shared ones)."""
    return {status: error_response(status) for status in statuses}


def statuses_of(method: str, path: str) -> set[int]:
    """The error statuses every operation ``method path`` may answer, besides its own."""
    statuses = {400, 422}
    if path not in PUBLIC_ROUTES:
        statuses |= {401, 403, 423}
        if "{" in path:
            statuses.add(404)
        if method.upper() not in SAFE_METHODS:
            statuses.add(409)
    return statuses


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with every operation's error answers and the envelope schema."""
    schema.setdefault("components", {}).setdefault("schemas", {})[ENVELOPE] = _ENVELOPE_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":  # FastAPI's, not our answer
                del responses["422"]
            for status in statuses_of(method, path):
                responses.setdefault(str(status), error_response(status))
            for status, response in responses.items():
                if re.fullmatch(r"[45]\d\d", str(status)):
                    response.setdefault("description", "Error")
                    response["content"] = {"application/json": {"schema": _REF}}  # FastAPI's 422 is not ours
    return schema
