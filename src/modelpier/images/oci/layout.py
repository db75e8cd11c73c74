"""OCI descriptors, manifests, image configs and index, and the on-disk OCI image layout.

Everything serialised here is canonical JSON (sorted keys, no spaces), so equal values have equal
digests. Docker's schema-2 media types are read as their OCI equivalents (registries such as
Docker Hub still serve them); what modelpier writes is always OCI. ``select_platform`` picks the
manifest for one os/architecture from an index. ``write_layout`` and ``read_layout`` handle the
OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``) that skopeo and umoci read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from modelpier.errors import InvalidArtifact, NotFound

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES: Final = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES: Final = (OCI_INDEX, DOCKER_LIST)
LAYER_GZIP_TYPES: Final = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP)
REF_NAME: Final = "org.opencontainers.image.ref.name"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content reference: media type, digest and size (and optional platform, annotations)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        try:
            return cls(media_type=str(data["mediaType"]), digest=str(data["digest"]), size=int(data["size"]),
                       annotations=dict(data.get("annotations") or {}),
                       platform=dict(data["platform"]) if data.get("platform") else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArtifact(f"malformed OCI descriptor {dict(data)!r}: {exc}") from None

    @classmethod
    def of(cls, media_type: str, data: bytes, **kwargs: Any) -> Descriptor:
        return cls(media_type=media_type, digest=sha256_digest(data), size=len(data), **kwargs)


@dataclass(frozen=True, slots=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": self.config.to_json(),
                                "layers": [layer.to_json() for layer in self.layers]}
        if self.annotations:
            body["annotations"] = dict(self.annotations)
        return canonical_json(body)

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        body = _object(data, "image manifest")
        try:
            layers = tuple(Descriptor.from_json(d) for d in body["layers"])
            config = Descriptor.from_json(body["config"])
        except (KeyError, TypeError) as exc:
            raise InvalidArtifact(f"image manifest without {exc}") from None
        for layer in layers:
            if layer.media_type not in LAYER_GZIP_TYPES:
                raise InvalidArtifact(f"layer {layer.digest} has media type {layer.media_type}; only gzip "
                                      f"tar layers are supported")
        return cls(config=config, layers=layers, annotations=dict(body.get("annotations") or {}))


def _object(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise InvalidArtifact(f"{what} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArtifact(f"{what} is not a JSON object")
    return body


def parse_index(data: bytes) -> list[Descriptor]:
    """The manifests an index (or Docker manifest list) names."""
    body = _object(data, "image index")
    return [Descriptor.from_json(d) for d in body.get("manifests") or []]


def index_bytes(manifests: Sequence[Descriptor]) -> bytes:
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": [m.to_json() for m in manifests]})


def select_platform(manifests: Sequence[Descriptor], os_name: str = "linux", architecture: str = "amd64"
                    ) -> Descriptor:
    """The manifest for ``os_name``/``architecture`` in an index (attestation entries never match)."""
    for descriptor in manifests:
        platform = descriptor.platform or {}
        if platform.get("os") == os_name and platform.get("architecture") == architecture:
            return descriptor
    offered = sorted(f"{(d.platform or {}).get('os')}/{(d.platform or {}).get('architecture')}"
                     for d in manifests if d.platform)
    raise NotFound(f"the image index has no {os_name}/{architecture} manifest (it has: {', '.join(offered) or 'none'})")


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config modelpier reads and writes. ``raw`` keeps a base's fields."""

    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        return cls(_object(data, "image config"))

    @property
    def diff_ids(self) -> list[str]:
        return list((self.raw.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def container(self) -> dict[str, Any]:
        return dict(self.raw.get("config") or {})

    @property
    def history(self) -> list[dict[str, Any]]:
        return [dict(h) for h in self.raw.get("history") or []]

    def to_bytes(self) -> bytes:
        return canonical_json(dict(self.raw))


# -- OCI image layout on disk ---------------------------------------------------------------------

def blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def init_layout(layout: Path) -> None:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))


def put_blob_bytes(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    target = blob_path(layout, digest)
    if not target.is_file():
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return digest


def put_blob_file(layout: Path, digest: str, source: Path) -> None:
    """Copy (or hard-link, when on one file system) a blob file whose digest is already known."""
    target = blob_path(layout, digest)
    if target.is_file():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_index(layout: Path, manifest: Descriptor, tag: str) -> None:
    """Make ``tag`` point at ``manifest`` in the layout's ``index.json``, keeping other tags."""
    index_file = layout / "index.json"
    current = parse_index(index_file.read_bytes()) if index_file.is_file() else []
    kept = [d for d in current if d.annotations.get(REF_NAME) != tag]
    tagged = Descriptor(manifest.media_type, manifest.digest, manifest.size, annotations={REF_NAME: tag})
    index_file.write_bytes(index_bytes([*kept, tagged]))


def read_layout(layout: Path, tag: str) -> tuple[Descriptor, Manifest]:
    """The manifest ``tag`` names in an OCI layout."""
    index_file = layout / "index.json"
    if not index_file.is_file():
        raise NotFound(f"{layout} is not an OCI image layout (no index.json)")
    for descriptor in parse_index(index_file.read_bytes()):
        if descriptor.annotations.get(REF_NAME) == tag:
            return descriptor, Manifest.parse(blob_path(layout, descriptor.digest).read_bytes())
    raise NotFound(f"the OCI layout {layout} has no tag {tag!r}")
