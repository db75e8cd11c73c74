"""Revocation takes effect at once at the gateway: a real ``pier up`` (control plane, reconciler,
gateway process, a replica) and a token-mode deployment.

The gateway caches allowed token checks for 10 s. Revoking a token (or removing a member) advances
the auth epoch; the control plane publishes it in the routing table, the held long poll answers at
once, and the gateway drops its cache: the token is refused within a round trip, long before 10 s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.platform_support import V2_BODY, Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS, wait_until

pytestmark = pytest.mark.slow

CACHE_TTL_S = 10.0  # the gateway's cache lifetime of an allowed check (ControlPlaneVerifier's default)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("revocation")
    save_models(home)
    env = replica_env(36000 + (os.getpid() % 50) * 200 % 20000)
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


def _api(platform: Platform, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{platform.api}/api/v1{path}", headers=ADMIN_HEADERS, timeout=30, **kwargs)


def _token_for(platform: Platform, user: str) -> tuple[int, str]:
    made = _api(platform, "POST", "/tokens", json={"name": "client", "user": user})
    assert made.status_code == 201, made.text
    assert _api(platform, "PUT", f"/projects/default/members/{user}", json={"role": "viewer"}).status_code == 200
    return int(made.json()["id"]), str(made.json()["token"])


def _invoke(platform: Platform, token: str) -> int:
    return httpx.post(f"{platform.gateway}/default/locked/v2/models/iris/infer", json=V2_BODY, timeout=10,
                      headers={"authorization": f"Bearer {token}"}).status_code


def _routing(platform: Platform, *, etag: str | None = None, wait: float = 0) -> httpx.Response:
    headers = {**ADMIN_HEADERS, **({"if-none-match": etag} if etag else {})}
    return httpx.get(f"{platform.api}/api/v1/routing", params={"wait": wait}, headers=headers, timeout=40)


@pytest.fixture(scope="module")
def locked(platform: Platform) -> Platform:
    platform.apply("locked", [{"name": "main", "model": "iris:1", "replicas": 1}], auth={"mode": "token"})
    platform.wait_ready("locked", 1)
    return platform


class HeldPoll:
    """``GET /api/v1/routing?wait=30`` with the current ETag, in a thread: answers when the table changes."""

    def __init__(self, platform: Platform) -> None:
        first = _routing(platform)
        assert first.status_code == 200
        self.epoch = int(first.json()["authEpoch"])
        self.answer: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(platform, first.headers["etag"]), daemon=True)
        self._thread.start()

    def _run(self, platform: Platform, etag: str) -> None:
        self.answer = _routing(platform, etag=etag, wait=30)

    def result(self) -> httpx.Response:
        self._thread.join(timeout=40)
        assert self.answer is not None
        return self.answer


def test_a_revoked_token_is_refused_by_the_gateway_at_once(locked: Platform) -> None:
    token_id, token = _token_for(locked, "bob")
    assert _invoke(locked, token) == 200  # and the gateway now caches bob's allow for 10 s
    poll = HeldPoll(locked)
    revoked_at = time.monotonic()
    assert _api(locked, "DELETE", f"/tokens/{token_id}").status_code == 200
    answer = poll.result()
    assert answer.status_code == 200  # the held poll answered with a new table, not a 304 at its timeout
    assert answer.json()["authEpoch"] > poll.epoch
    assert time.monotonic() - revoked_at < 20
    wait_until(lambda: _invoke(locked, token) == 401, timeout=5, what="the gateway to refuse the revoked token")
    assert time.monotonic() - revoked_at < CACHE_TTL_S  # the epoch flushed the cache, not its expiry


def test_a_removed_member_is_refused_by_the_gateway_at_once(locked: Platform) -> None:
    _, token = _token_for(locked, "carol")
    assert _invoke(locked, token) == 200
    before = int(_routing(locked).json()["authEpoch"])
    removed_at = time.monotonic()
    assert _api(locked, "DELETE", "/projects/default/members/carol").status_code == 204
    wait_until(lambda: _invoke(locked, token) == 401, timeout=5, what="the gateway to refuse a removed member")
    assert time.monotonic() - removed_at < CACHE_TTL_S
    assert int(_routing(locked).json()["authEpoch"]) > before


def test_a_deleted_users_tokens_stop_at_the_gateway_and_the_api(locked: Platform) -> None:
    _, token = _token_for(locked, "dave")
    assert _invoke(locked, token) == 200
    deleted_at = time.monotonic()
    assert _api(locked, "DELETE", "/users/dave").status_code == 204
    wait_until(lambda: _invoke(locked, token) == 401, timeout=5, what="the gateway to refuse a deleted user")
    assert time.monotonic() - deleted_at < CACHE_TTL_S
    whoami = httpx.get(f"{locked.api}/api/v1/whoami", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert whoami.status_code == 401
    assert token not in whoami.text


def test_the_epoch_survives_a_restart_of_the_control_plane(locked: Platform) -> None:
    epoch = int(_routing(locked).json()["authEpoch"])
    assert epoch >= 3  # the tests above moved it
    locked.proc.terminate()
    locked.proc.wait(timeout=30)
    api_port = int(locked.api.rsplit(":", 1)[1])
    gw_port = int(locked.gateway.rsplit(":", 1)[1])
    with run_platform(locked.home, locked.env, api_port=api_port, gw_port=gw_port) as again:
        wait_until(lambda: _routing(again).status_code == 200, what="the restarted control plane's table")
        assert int(_routing(again).json()["authEpoch"]) == epoch
