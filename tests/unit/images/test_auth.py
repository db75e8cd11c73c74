"""Registry challenges and the credential files login tools write."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from modelpier.errors import InvalidInput
from modelpier.images.distribution.auth import (
    credentials_from_auth_file,
    find_credentials,
    parse_challenge,
    parse_credentials,
)


def test_docker_hub_bearer_challenge() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                'scope="repository:library/python:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                "scope": "repository:library/python:pull"}


def test_basic_challenge() -> None:
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_per_registry_and_docker_hubs_v1_key() -> None:
    data = json.dumps({"auths": {"ghcr.io": {"auth": _auth("me", "ghp_x")},
                                 "https://index.docker.io/v1/": {"auth": _auth("hub", "pw:with:colons")}}})
    assert credentials_from_auth_file(data, "ghcr.io") == parse_credentials("me:ghp_x")
    found = credentials_from_auth_file(data, "docker.io")
    assert found is not None
    assert found.password == "pw:with:colons"
    assert credentials_from_auth_file(data, "quay.io") is None
    assert credentials_from_auth_file("not json", "ghcr.io") is None


def test_registry_auth_file_is_read_first(tmp_path: Path) -> None:
    mine = tmp_path / "auth.json"
    mine.write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": _auth("a", "b")}}}))
    env = {"REGISTRY_AUTH_FILE": str(mine), "DOCKER_CONFIG": str(tmp_path / "none")}
    assert find_credentials("127.0.0.1:5000", env) == parse_credentials("a:b")
    assert find_credentials("ghcr.io", env) is None


def test_credentials_need_a_user_and_a_colon() -> None:
    with pytest.raises(InvalidInput, match="USER:PASSWORD"):
        parse_credentials("token-only")
