"""A version as a self-describing folder, as images carry it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelpier.errors import CorruptBlob, InvalidArtifact
from modelpier.registry.domain import FileEntry, Flavor, ModelVersion
from modelpier.registry.version_folder import MANIFEST_FILE, manifest_bytes, read_version_folder
from modelpier.spec.signature import Signature


def _folder(tmp_path: Path, created: datetime) -> tuple[Path, ModelVersion]:
    data = b"weights"
    entry = FileEntry("sub/model.bin", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    version = ModelVersion(
        model="iris", version=4, flavor=Flavor.PYTHON, digest="sha256:" + "c" * 64, size=len(data), files=(entry,),
        signature=Signature.model_validate({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                                            "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}]}),
        input_example=[[1, 2, 3, 4]], metrics={"acc": 0.9}, params={}, tags={"t": "1"}, description="d",
        environment={}, created_by="x", created_at=created, source=None)
    (tmp_path / "files" / "sub").mkdir(parents=True)
    (tmp_path / "files" / "sub" / "model.bin").write_bytes(data)
    (tmp_path / MANIFEST_FILE).write_bytes(manifest_bytes(version))
    return tmp_path, version


def test_a_version_folder_round_trips_what_serving_needs(tmp_path: Path) -> None:
    folder, version = _folder(tmp_path, datetime.now(UTC))
    read = read_version_folder(folder)
    assert (read.ref, read.flavor, read.signature, read.entries) == ("iris:4", Flavor.PYTHON, version.signature,
                                                                     version.files)
    assert read.files == folder / "files"


def test_the_manifest_does_not_change_with_time_or_tags(tmp_path: Path) -> None:
    _, one = _folder(tmp_path / "a", datetime(2020, 1, 1, tzinfo=UTC))
    _, two = _folder(tmp_path / "b", datetime(2026, 1, 1, tzinfo=UTC))
    assert manifest_bytes(one) == manifest_bytes(two)


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path, datetime.now(UTC))
    (folder / "files" / "sub" / "model.bin").write_bytes(b"tampered")
    with pytest.raises(CorruptBlob, match="does not match its digest"):
        read_version_folder(folder)
    (folder / "files" / "sub" / "model.bin").unlink()
    with pytest.raises(InvalidArtifact, match="missing"):
        read_version_folder(folder)
