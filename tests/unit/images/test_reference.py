"""Image references read as Docker and every OCI tool reads them."""

from __future__ import annotations

import pytest

from modelpier.errors import InvalidReference
from modelpier.images.distribution.reference import ImageRef

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "registry", "api", "repository", "tag", "digest"), [
    ("python:3.11-slim", "docker.io", "registry-1.docker.io", "library/python", "3.11-slim", None),
    ("acme/iris", "docker.io", "registry-1.docker.io", "acme/iris", None, None),
    ("ghcr.io/acme/iris:3", "ghcr.io", "ghcr.io", "acme/iris", "3", None),
    ("127.0.0.1:5000/models/iris", "127.0.0.1:5000", "127.0.0.1:5000", "models/iris", None, None),
    ("localhost/iris:1", "localhost", "localhost", "iris", "1", None),
    (f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/iris@{DIGEST}", "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
     "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "iris", None, DIGEST),
    (f"ghcr.io/acme/iris:3@{DIGEST}", "ghcr.io", "ghcr.io", "acme/iris", "3", DIGEST),
])
def test_references_parse(text: str, registry: str, api: str, repository: str, tag: str | None,
                          digest: str | None) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.api_host, ref.repository, ref.tag, ref.digest) == (registry, api, repository, tag, digest)
    assert ref.reference == (digest or tag or "latest")


def test_a_digest_reference_prints_and_parses_back() -> None:
    ref = ImageRef.parse("127.0.0.1:5000/models/iris:1").with_digest(DIGEST)
    assert str(ref) == f"127.0.0.1:5000/models/iris@{DIGEST}"
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize(("text", "problem"), [
    ("ghcr.io/Acme/iris", "lowercase"), ("iris@sha256:12", "digest"), ("iris:bad tag", "tag"), ("", "repository")])
def test_bad_references_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InvalidReference, match=problem):
        ImageRef.parse(text)
