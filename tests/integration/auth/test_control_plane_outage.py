"""Token-protected endpoints stay up while the control plane is down (issue 13, item 1).

A real ``pier up`` (control plane, gateway process, a replica) and a token-mode deployment. With the
control plane stopped, a token the gateway checked before keeps working past the 10 s cache of
answers (up to ``gateway.token_stale_limit_s``), a token it never saw gets 503 with Retry-After
(not a false 401), and the gateway logs the outage once, not once per request. A restarted
control plane brings the normal answers back, and its return is logged once.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.platform_support import V2_BODY, Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS, wait_until

pytestmark = pytest.mark.slow

CACHE_TTL_S = 10.0  # ControlPlaneVerifier's cache of an allowed check: the outage must outlast it
UNKNOWN = "pier_never-issued-0123456789abcdefghijklmnop"
UNSEEN = "pier_not-seen-before-the-outage-0123456789abcd"  # checked for the first time during the outage


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("outage")
    save_models(home)
    env = replica_env(38000 + (os.getpid() % 50) * 200 % 20000)
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


def _invoke(client: httpx.Client, platform: Platform, token: str) -> httpx.Response:
    return client.post(f"{platform.gateway}/default/locked/v2/models/iris/infer", json=V2_BODY, timeout=10,
                       headers={"authorization": f"Bearer {token}"})


def _gateway_log(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in home.rglob("gateway*.log"))


def test_valid_tokens_keep_working_while_the_control_plane_is_down(platform: Platform) -> None:
    platform.apply("locked", [{"name": "main", "model": "iris:1", "replicas": 1}], auth={"mode": "token"})
    platform.wait_ready("locked", 1)
    made = httpx.post(f"{platform.api}/api/v1/tokens", json={"name": "client", "user": "carol"},
                      headers=ADMIN_HEADERS, timeout=30)
    assert made.status_code == 201, made.text
    assert httpx.put(f"{platform.api}/api/v1/projects/default/members/carol", json={"role": "viewer"},
                     headers=ADMIN_HEADERS, timeout=30).status_code == 200
    token = made.json()["token"]
    with httpx.Client() as client:
        assert _invoke(client, platform, token).status_code == 200
        assert _invoke(client, platform, UNKNOWN).status_code == 401

        platform.proc.terminate()  # the control plane stops; the gateway and the replica keep running
        platform.proc.wait(timeout=30)
        statuses: Counter[int] = Counter()
        down_since = time.monotonic()
        while time.monotonic() - down_since < CACHE_TTL_S + 3:  # past the cache of answers: the stale ones serve
            statuses[_invoke(client, platform, token).status_code] += 1
        assert statuses == Counter({200: sum(statuses.values())})
        refused = _invoke(client, platform, UNSEEN)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "service_unavailable"
        for _ in range(200):
            assert _invoke(client, platform, UNSEEN).status_code == 503
        assert _invoke(client, platform, UNKNOWN).status_code == 401  # refused before the outage: still refused
        log = _gateway_log(platform.home)
        assert log.count("cannot check tokens with the control plane") == 1, log[-3000:]

        api_port = int(platform.api.rsplit(":", 1)[1])
        gw_port = int(platform.gateway.rsplit(":", 1)[1])
        with run_platform(platform.home, platform.env, api_port=api_port, gw_port=gw_port) as again:
            platform.proc = again.proc
            wait_until(lambda: _invoke(client, platform, UNSEEN).status_code == 401, timeout=30,
                       what="the gateway checking tokens with the restarted control plane")
            assert _invoke(client, platform, token).status_code == 200
            log = _gateway_log(platform.home)
            assert log.count("cannot check tokens with the control plane") == 1
            assert log.count("answers token checks again") == 1
