"""Registry authentication, as Docker Hub, ghcr.io, ECR and the CNCF registry do it.

A registry answers 401 with ``WWW-Authenticate: Bearer realm="…",service="…",scope="…"`` (token
auth) or ``Basic realm="…"``. For Bearer, the client asks the realm for a token for the scope,
sending its basic credentials if it has any (anonymous pulls of public images get a token without),
and retries with ``Authorization: Bearer``. ``parse_challenge`` is the pure part; credentials come
from the file ``docker login``/``skopeo login``/``podman login`` write (``auths`` with base64
``user:password``), or are given directly.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelpier.errors import InvalidInput

_PARAM = re.compile(r'([A-Za-z_]+)=(?:"([^"]*)"|([^\s,]*))')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "bearer" or "basic", lower case
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`` → a Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme=scheme.lower(), params=params)


def auth_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where login tools keep credentials, most specific first."""
    env = os.environ if env is None else env
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    docker_config = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
    files.append(docker_config / "config.json")
    return files


def credentials_from_auth_file(data: str, registry: str) -> Credentials | None:
    """The credentials an auth file holds for ``registry`` (Docker Hub's key is its v1 URL)."""
    try:
        auths = json.loads(data).get("auths") or {}
    except (ValueError, AttributeError):
        return None
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                continue
            if sep:
                return Credentials(user, password)
    return None


def find_credentials(registry: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    for file in auth_files(env):
        if file.is_file():
            found = credentials_from_auth_file(file.read_text(), registry)
            if found is not None:
                return found
    return None


def parse_credentials(text: str) -> Credentials:
    """``USER:PASSWORD`` (as skopeo's ``--creds``)."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise InvalidInput("registry credentials must look like USER:PASSWORD")
    return Credentials(user, password)
