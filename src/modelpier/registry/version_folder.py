"""A version as a self-describing folder: ``pier-version.json`` next to ``files/``.

Images built by ``pier build image`` carry the model this way (``/opt/pier/model``), so a server
in a container needs no registry: ``pier serve /opt/pier/model`` reads the flavor, signature and
version from the manifest, and checks every file against its sha256 before loading. The manifest
is canonical JSON, so the same version always gives the same bytes (and the same image layer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from modelpier.errors import CorruptBlob, InvalidArtifact
from modelpier.registry.domain import FileEntry, Flavor, ModelVersion
from modelpier.spec.signature import Signature

MANIFEST_FILE: Final = "pier-version.json"
FILES_DIR: Final = "files"
FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class VersionFolder:
    """What a version folder says about its model; ``files`` is the folder a runtime loads."""

    model: str
    version: int
    flavor: Flavor
    digest: str
    signature: Signature | None
    files: Path
    entries: tuple[FileEntry, ...]

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


def manifest_bytes(version: ModelVersion) -> bytes:
    """The manifest of a version: only what serving needs, nothing that changes when it is re-read
    (no timestamps, aliases or tags), so equal versions give equal bytes."""
    body: dict[str, Any] = {
        "format": FORMAT, "model": version.model, "version": version.version, "flavor": version.flavor.value,
        "digest": version.digest,
        "files": [{"path": f.path, "digest": f.digest, "size": f.size}
                  for f in sorted(version.files, key=lambda f: f.path)],
        "signature": version.signature.model_dump(mode="json") if version.signature is not None else None,
        "input_example": version.input_example,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def is_version_folder(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_FILE).is_file()


def read_version_folder(path: Path, *, verify: bool = True) -> VersionFolder:
    """Read a version folder; with ``verify``, every listed file must be there with its digest."""
    try:
        body = json.loads((path / MANIFEST_FILE).read_bytes())
        entries = tuple(FileEntry(str(f["path"]), str(f["digest"]), int(f["size"])) for f in body["files"])
        signature = Signature.model_validate(body["signature"]) if body.get("signature") else None
        folder = VersionFolder(model=str(body["model"]), version=int(body["version"]), flavor=Flavor(body["flavor"]),
                               digest=str(body["digest"]), signature=signature, files=path / FILES_DIR,
                               entries=entries)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidArtifact(f"{path / MANIFEST_FILE} is not a readable version manifest: {exc}") from None
    if verify:
        for entry in entries:
            _verify(folder.files / entry.path, entry)
    return folder


def _verify(file: Path, entry: FileEntry) -> None:
    if not file.is_file():
        raise InvalidArtifact(f"{file} is listed in the version manifest but missing")
    sha = hashlib.sha256()
    with file.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            sha.update(chunk)
    if f"sha256:{sha.hexdigest()}" != entry.digest:
        raise CorruptBlob(f"{file} does not match its digest {entry.digest}")
