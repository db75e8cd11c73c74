"""The builder's local cache (``$PIER_HOME/images``): blobs by digest, and what was built from what.

``blobs/sha256/<hex>`` holds every blob the builder pulled or wrote (base layers, our layers,
configs), so a warm build downloads and writes nothing it already has. ``layers/<key>.json``
remembers the layer built from a set of inputs (an environment's requirements, modelpier's source,
a model version), ``bases/<digest>.json`` what the builder found in a base image (its Python). An
entry whose blob is gone is a miss, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modelpier.images.build import BasePython, BuiltLayer


class ImageCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "layers").mkdir(exist_ok=True)
        (root / "bases").mkdir(exist_ok=True)
        (root / "work").mkdir(exist_ok=True)

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self.blob(digest).is_file()

    def put_bytes(self, digest: str, data: bytes) -> None:
        self._write(self.blob(digest), data)

    def adopt(self, source: Path, digest: str) -> Path:
        """Move a freshly written blob file into place under its digest."""
        target = self.blob(digest)
        os.replace(source, target)
        return target

    def work_dir(self, name: str) -> Path:
        path = self.root / "work" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def layer(self, key: str) -> BuiltLayer | None:
        found = self._read(self.root / "layers" / f"{key.removeprefix('sha256:')}.json")
        if found is None:
            return None
        layer = BuiltLayer(**found)
        return layer if self.has_blob(layer.digest) else None

    def put_layer(self, key: str, layer: BuiltLayer) -> None:
        body = {"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id, "created_by": layer.created_by}
        self._write(self.root / "layers" / f"{key.removeprefix('sha256:')}.json", json.dumps(body).encode())

    def base_python(self, manifest_digest: str) -> BasePython | None:
        found = self._read(self.root / "bases" / f"{manifest_digest.removeprefix('sha256:')}.json")
        return BasePython(**found) if found else None

    def put_base_python(self, manifest_digest: str, python: BasePython) -> None:
        self._write(self.root / "bases" / f"{manifest_digest.removeprefix('sha256:')}.json",
                    json.dumps({"path": python.path, "version": python.version}).encode())

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            found = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
