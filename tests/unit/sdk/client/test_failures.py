"""Answers to modelpier errors: the server's message, whatever its shape, the status and the request id."""

from __future__ import annotations

import orjson
import pytest

from modelpier.errors import (
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    Overloaded,
    PierError,
    RemoteError,
    ServiceUnavailable,
    Unauthenticated,
)
from modelpier.sdk.client.failures import grpc_error, http_error, retry_after_s, server_message


@pytest.mark.parametrize(("body", "message", "code"), [
    (b'{"error": "input \'x\': bad shape"}', "input 'x': bad shape", None),  # V2, KServe V1
    (b'{"error": {"code": "not_found", "message": "no deployment acme/x"}}', "no deployment acme/x", "not_found"),
    (b'{"status": {"code": 400, "info": "bad rows", "status": "FAILURE"}}', "bad rows", None),  # Seldon
    (b"plain text failure", "plain text failure", None),
    (b"", None, None),
])
def test_server_message_reads_every_shape(body: bytes, message: str | None, code: str | None) -> None:
    assert server_message(body) == (message, code)


@pytest.mark.parametrize(("status", "body", "retry_after", "cls"), [
    (400, b'{"error": "bad"}', None, InvalidInput),
    (401, b'{"error": {"code": "unauthenticated", "message": "token"}}', None, Unauthenticated),
    (404, b'{"error": "no model"}', None, NotFound),
    (503, b'{"error": "loading"}', None, ServiceUnavailable),
    (503, b'{"error": "queue full"}', "2", Overloaded),
    (504, b'{"error": "slow"}', None, DeadlineExceeded),
    (500, b'{"error": "model failed; error id 1"}', None, RemoteError),
    (502, b"", None, RemoteError),
])
def test_http_error_class(status: int, body: bytes, retry_after: str | None, cls: type[PierError]) -> None:
    error = http_error(status, body, "rid-1", retry_after)
    assert type(error) is cls
    assert "rid-1" in error.message
    assert error.details["request_id"] == "rid-1"
    assert error.details["status"] == status


def test_http_error_keeps_the_servers_words_and_hint() -> None:
    error = http_error(503, orjson.dumps({"error": "model queue is full"}), "abc", "3")
    assert isinstance(error, Overloaded)
    assert error.retry_after_s == 3
    assert error.message == "model queue is full (HTTP 503, request id abc)"


def test_remote_error_keeps_the_status() -> None:
    error = http_error(500, b'{"error": "boom"}', "r")
    assert isinstance(error, RemoteError)
    assert error.status == 500


@pytest.mark.parametrize(("code", "cls"), [("INVALID_ARGUMENT", InvalidInput), ("NOT_FOUND", NotFound),
                                           ("DEADLINE_EXCEEDED", DeadlineExceeded), ("INTERNAL", RemoteError),
                                           ("RESOURCE_EXHAUSTED", Overloaded)])
def test_grpc_error_class(code: str, cls: type[PierError]) -> None:
    error = grpc_error(code, "the message", "r9")
    assert type(error) is cls
    assert error.message.startswith("the message")
    assert "r9" in error.message


@pytest.mark.parametrize(("value", "seconds"), [(None, None), ("2", 2), ("0", 0), ("1.5", 1),
                                                ("Wed, 21 Oct 2026 07:28:00 GMT", 1)])
def test_retry_after(value: str | None, seconds: int | None) -> None:
    assert retry_after_s(value) == seconds
