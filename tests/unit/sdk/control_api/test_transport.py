"""Reading answers: the error envelope becomes the error tree with the request id; retries only what
never reached the server, and only for idempotent calls."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from modelpier.errors import Conflict, Forbidden, NotFound, RemoteError, RemoteUnreachable, ServiceUnavailable
from modelpier.registry.wire import ModelBody
from modelpier.sdk.client.retry import Failure
from modelpier.sdk.control_api import ControlClient, access, blobs, models
from modelpier.sdk.control_api.call import Call, get, one, post
from modelpier.sdk.control_api.transport import Exchange, Options, error_of, finish, retry_wait

JITTER = random.Random(0)  # noqa: S311 -- backoff jitter, seeded so the waits are known


def _envelope(code: str, message: str, **details: Any) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()


@pytest.mark.parametrize(("status", "body", "cls", "message"), [
    (404, _envelope("not_found", "model 'iris' not found", model="iris"), NotFound, "model 'iris' not found"),
    (403, _envelope("forbidden", "viewer cannot apply"), Forbidden, "viewer cannot apply"),
    (409, _envelope("conflict", "project has deployments"), Conflict, "project has deployments"),
    (503, _envelope("service_unavailable", "not ready"), ServiceUnavailable, "not ready"),
    (502, b"<html>bad gateway</html>", RemoteError, "remote answered HTTP 502"),  # not the platform's envelope
    (500, b"", RemoteError, "remote answered HTTP 500"),
])
def test_error_answers_become_the_error_tree_with_the_request_id(status: int, body: bytes, cls: type[Exception],
                                                                 message: str) -> None:
    error = error_of(status, body, "rid-7")
    assert type(error) is cls
    assert error.message == message
    assert error.details["request_id"] == "rid-7"


def test_the_servers_details_are_kept() -> None:
    assert error_of(404, _envelope("not_found", "gone", model="iris"), "r").details == {"model": "iris",
                                                                                       "request_id": "r"}


def test_accepted_statuses_are_answers_and_a_bad_body_is_a_remote_error() -> None:
    missing = httpx.Response(404, request=httpx.Request("HEAD", "http://c/api/v1/blobs/x"))
    assert finish(blobs.blob_exists("x"), missing, "r") is False
    garbled = httpx.Response(200, content=b'{"name": 3}', request=httpx.Request("GET", "http://c/api/v1/models/a"))
    with pytest.raises(RemoteError, match="answer does not parse") as info:
        finish(models.get_model(None, "a"), garbled, "r")
    assert info.value.details["request_id"] == "r"


@pytest.mark.parametrize(("call", "failure", "retried"), [
    (get("/models", one(ModelBody)), Failure.NOT_CONNECTED, True),
    (get("/models", one(ModelBody)), Failure.REFUSED, True),
    (get("/models", one(ModelBody)), Failure.OTHER, False),  # may have been seen: never again
    (post("/tokens", {}, one(ModelBody)), Failure.NOT_CONNECTED, False),  # not idempotent
    (blobs.append("u", 0, iter([b"x"])), Failure.NOT_CONNECTED, False),  # a stream cannot be replayed
])
def test_only_idempotent_calls_that_never_reached_the_server_are_retried(call: Call[Any], failure: Failure,
                                                                        retried: bool) -> None:
    wait = retry_wait(Options("http://c"), call, failure, 0, remaining_s=10.0, jitter=0.5)
    assert (wait is not None) is retried


def test_retries_stop_after_the_policy_and_raise_unreachable_naming_the_url() -> None:
    options = Options("http://control:9", retries=2, hint="is it running?")
    with httpx.Client(**options.client_kwargs()) as http:
        exchange = Exchange(options, models.list_models(None), http, JITTER)
        refused = httpx.ConnectError("refused")
        assert exchange.settle(refused) is not None
        assert exchange.settle(refused) is not None
        with pytest.raises(RemoteUnreachable, match=r"cannot reach the modelpier control plane at "
                                                    r"http://control:9 \(GET /api/v1/models\): refused; is it running"):
            exchange.settle(refused)


def test_a_refusal_with_retry_after_is_waited_out_then_the_answer_read() -> None:
    options = Options("http://c", retries=2)
    with httpx.Client(**options.client_kwargs()) as http:
        exchange = Exchange(options, access.list_projects(), http, JITTER)
        busy = httpx.Response(503, headers={"retry-after": "1"}, request=exchange.request)
        assert exchange.settle(busy) == pytest.approx(1.0)
        answer = httpx.Response(200, json=[{"name": "acme"}], request=exchange.request)
        assert exchange.settle(answer) is None
        assert exchange.result == ["acme"]


def test_the_sync_client_sends_and_retries_a_connection_that_was_refused() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=[{"name": "acme"}])

    with ControlClient("http://control", token="pier_t", transport=httpx.MockTransport(handle)) as client:
        assert client.send(access.list_projects()) == ["acme"]
    assert len(seen) == 2
    assert seen[1].headers["authorization"] == "Bearer pier_t"
    assert seen[0].headers["x-request-id"] == seen[1].headers["x-request-id"]  # one call, one id
