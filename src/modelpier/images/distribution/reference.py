"""Image references: ``[REGISTRY/]REPO[:TAG][@DIGEST]``, read as Docker and every OCI tool reads them.

The first component is a registry when it has a dot or a port or is ``localhost``; otherwise the
reference is on Docker Hub, whose API lives at ``registry-1.docker.io`` and whose one-component
names are under ``library/`` (``python:3.11-slim`` is ``docker.io/library/python:3.11-slim``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from modelpier.errors import InvalidReference

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str  # as written: docker.io, ghcr.io, 127.0.0.1:5000, 123.dkr.ecr.eu-west-1.amazonaws.com
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag (``latest`` by default)."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        raw = text.strip()
        rest, _, digest = raw.partition("@")
        if digest and not _DIGEST.match(digest):
            raise InvalidReference(f"image reference {text!r}: {digest!r} is not a sha256:<64 hex> digest")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        tag: str | None = None
        last_slash = path.rfind("/")
        colon = path.rfind(":")
        if colon > last_slash:
            path, tag = path[:colon], path[colon + 1:]
            if not _TAG.match(tag):
                raise InvalidReference(f"image reference {text!r}: tag {tag!r} is not valid")
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not path or not _REPO.match(path):
            raise InvalidReference(f"image reference {text!r}: repository {path!r} must be lowercase "
                                   f"letters, digits and separators, like ghcr.io/acme/iris:1")
        return cls(registry=registry, repository=path, tag=tag, digest=digest or None)
