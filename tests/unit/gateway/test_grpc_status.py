"""gRPC codes and the gateway's HTTP statuses, both ways (pure)."""

from __future__ import annotations

import grpc
import orjson
import pytest

from modelpier.errors import (
    DeadlineExceeded,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PierError,
    RemoteError,
    ServiceUnavailable,
    Unauthenticated,
)
from modelpier.gateway.dispatch import error_answer
from modelpier.gateway.grpc_status import answer_error, grpc_code_of, http_status_of, replica_error
from modelpier.gateway.proxy import Answer


@pytest.mark.parametrize(("code", "status"), [
    (grpc.StatusCode.OK, 200), (grpc.StatusCode.INVALID_ARGUMENT, 400), (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429), (grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504), (grpc.StatusCode.INTERNAL, 500), (grpc.StatusCode.UNKNOWN, 500),
    (grpc.StatusCode.UNAUTHENTICATED, 401), (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.UNIMPLEMENTED, 501), (grpc.StatusCode.CANCELLED, 499),
])
def test_a_replica_code_counts_as_its_http_equivalent(code: grpc.StatusCode, status: int) -> None:
    assert http_status_of(code) == status


def test_every_code_has_an_http_status() -> None:
    assert all(100 <= http_status_of(code) < 600 for code in grpc.StatusCode)


@pytest.mark.parametrize(("error", "code"), [
    (ServiceUnavailable("no ready replica"), grpc.StatusCode.UNAVAILABLE),
    (Overloaded("limits.maxInFlight"), grpc.StatusCode.RESOURCE_EXHAUSTED),  # 503 too, but overload
    (DeadlineExceeded("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (PayloadTooLarge("too big"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (RemoteError("answer over 256 MiB"), grpc.StatusCode.INTERNAL),
    (NotFound("no deployment"), grpc.StatusCode.NOT_FOUND),
    (Unauthenticated("token"), grpc.StatusCode.UNAUTHENTICATED),
])
def test_the_gateways_own_refusals_keep_their_message(error: PierError, code: grpc.StatusCode) -> None:
    assert answer_error(error_answer(error, retry_after=1)) == (code, error.message)


@pytest.mark.parametrize(("status", "code"), [
    (502, grpc.StatusCode.INTERNAL), (503, grpc.StatusCode.UNAVAILABLE), (504, grpc.StatusCode.DEADLINE_EXCEEDED),
    (413, grpc.StatusCode.RESOURCE_EXHAUSTED), (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (400, grpc.StatusCode.INVALID_ARGUMENT), (418, grpc.StatusCode.UNKNOWN), (599, grpc.StatusCode.INTERNAL),
    (200, grpc.StatusCode.OK),
])
def test_statuses_without_a_known_error_code(status: int, code: grpc.StatusCode) -> None:
    assert grpc_code_of(status, "some_new_code") == code


def test_a_replicas_error_round_trips_unchanged() -> None:
    answer = replica_error(grpc.StatusCode.INVALID_ARGUMENT, "input-0: expected 4 features, got 3 — bad",
                           [(b"x-model-trailer", b"yes")])
    assert answer.status == 400
    assert (b"x-model-trailer", b"yes") in answer.headers
    assert answer_error(answer) == (grpc.StatusCode.INVALID_ARGUMENT, "input-0: expected 4 features, got 3 — bad")


@pytest.mark.parametrize(("answer", "expected"), [
    (Answer(200, [], b"anything"), None),
    (Answer(503, [(b"grpc-status", b"99")], b""), (grpc.StatusCode.UNKNOWN, "")),  # a code from the future
    (Answer(500, [], b"not json"), (grpc.StatusCode.INTERNAL, "the gateway answered HTTP 500")),
    (Answer(404, [], orjson.dumps({"error": "model iris not served"})),  # V2's own error shape
     (grpc.StatusCode.NOT_FOUND, "model iris not served")),
])
def test_answer_error_edges(answer: Answer, expected: tuple[grpc.StatusCode, str] | None) -> None:
    assert answer_error(answer) == expected
