"""Request building: every endpoint is a pure ``Call``, so what goes on the wire is checked without a server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from modelpier.auth.access import Role
from modelpier.auth.wire import QuotaBody
from modelpier.control.api import calls as deployment_calls
from modelpier.sdk.control_api import Call, access, blobs, gateway, models
from modelpier.sdk.control_api.call import seg
from modelpier.sdk.control_api.transport import REQUEST_ID_HEADER, Options, build_request


@pytest.mark.parametrize(("call", "method", "path", "params", "body"), [
    (models.list_models(None, search="ir"), "GET", "/models", {"search": "ir"}, None),
    (models.list_models("acme"), "GET", "/projects/acme/models", None, None),
    (models.get_version("acme", "iris", "production"), "GET", "/projects/acme/models/iris/versions/production",
     None, None),
    (models.set_alias(None, "iris", "prod", 3), "PUT", "/models/iris/aliases/prod", None, {"version": 3}),
    (models.delete_version_tag(None, "iris", "2", "team"), "DELETE", "/models/iris/versions/2/tags/team", None, None),
    (blobs.finish_upload("u1", "sha256:ab"), "PUT", "/blobs/uploads/u1", {"digest": "sha256:ab"}, None),
    (access.list_tokens(search=None, all_users=True), "GET", "/tokens", {"all": True}, None),
    (access.set_member("acme", "bob", Role.editor), "PUT", "/projects/acme/members/bob", None, {"role": "editor"}),
    (access.set_quota("acme", QuotaBody(replicas=4)), "PUT", "/projects/acme/quota", None,
     {"replicas": 4, "cpu_millis": None, "memory_bytes": None, "gpus": None, "storage_bytes": None,
      "deployments": None}),
    (access.audit(None, limit=5), "GET", "/audit", {"limit": 5}, None),
    (deployment_calls.list_deployments(None), "GET", "/deployments", None, None),
    (deployment_calls.logs("acme", "iris", tail=10, predictor="main"), "GET",
     "/projects/acme/deployments/iris/logs", {"tail": 10, "predictor": "main"}, None),
    (deployment_calls.rollback("acme", "iris", None), "POST", "/projects/acme/deployments/iris/rollback", None,
     {"revision": None}),
    (deployment_calls.start_canary("acme", "iris", to="iris:7", steps=[10, 50], interval_s=30.0), "POST",
     "/projects/acme/deployments/iris/canary", None,
     {"to": "iris:7", "steps": [10, 50], "intervalSeconds": 30.0, "predictor": "canary"}),
    (gateway.verify_invocation("acme", "iris", "pier_x"), "POST", "/invocations/verify", None,
     {"project": "acme", "deployment": "iris", "token": "pier_x"}),
])
def test_endpoints_build_their_requests(call: Call[Any], method: str, path: str, params: dict[str, Any] | None,
                                        body: Any) -> None:
    assert (call.method, call.path, dict(call.params) if call.params else None, call.json) == \
        (method, path, params, body)


@pytest.mark.parametrize(("raw", "quoted"), [
    ("iris", "iris"), ("a/b", "a%2Fb"), ("a?b", "a%3Fb"), ("..", "%2E%2E"), (".", "%2E"), (3, "3"),
])
def test_a_segment_cannot_reach_another_route(raw: str | int, quoted: str) -> None:
    assert seg(raw) == quoted


def test_a_request_carries_the_base_url_token_request_id_and_body() -> None:
    options = Options("http://control:8000", token="pier_t")
    with httpx.Client(**options.client_kwargs()) as http:  # builds requests only: nothing is sent
        request = build_request(http, access.create_key("acme", "iris", "ci"), "rid-1")
    assert str(request.url) == "http://control:8000/api/v1/projects/acme/deployments/iris/keys"
    assert request.headers["authorization"] == "Bearer pier_t"
    assert request.headers[REQUEST_ID_HEADER] == "rid-1"
    assert json.loads(request.content) == {"name": "ci"}


def test_the_routing_poll_sends_its_etag_and_holds_within_its_own_timeout() -> None:
    first = gateway.poll_routing(None, wait_s=10.0, timeout_s=12.0)
    assert (dict(first.headers), first.params) == ({}, None)  # nothing to compare yet: answer at once
    held = gateway.poll_routing('"e1"', wait_s=10.0, timeout_s=12.0)
    assert (dict(held.headers), held.params, held.accept) == ({"If-None-Match": '"e1"'}, {"wait": "10"},
                                                              frozenset({304}))
    with httpx.Client(**Options("http://control").client_kwargs()) as http:
        request = build_request(http, held, "rid")
    assert request.extensions["timeout"]["read"] == 12.0
    assert str(request.url) == "http://control/api/v1/routing?wait=10"
