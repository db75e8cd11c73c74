"""Manifests, indexes and the on-disk OCI layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelpier.errors import InvalidArtifact, NotFound
from modelpier.images.oci.layout import (
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    init_layout,
    parse_index,
    put_blob_bytes,
    read_layout,
    select_platform,
    write_index,
)

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_a_manifest_is_canonical_and_round_trips() -> None:
    manifest = Manifest(config=Descriptor(OCI_CONFIG, D1, 10), layers=(Descriptor(OCI_LAYER_GZIP, D2, 20),))
    data = manifest.to_bytes()
    assert b" " not in data
    assert json.loads(data)["schemaVersion"] == 2
    assert Manifest.parse(data) == manifest


def test_docker_layers_are_read_and_other_layer_types_refused() -> None:
    body = {"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": D1, "size": 1},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": D2, "size": 2}]}
    assert Manifest.parse(json.dumps(body).encode()).layers[0].digest == D2
    body["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"  # type: ignore[index]
    with pytest.raises(InvalidArtifact, match="only gzip"):
        Manifest.parse(json.dumps(body).encode())


def test_select_platform_picks_linux_amd64_and_names_what_there_is() -> None:
    index = json.dumps({"mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": D1, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": D2, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()
    assert select_platform(parse_index(index)).digest == D2
    with pytest.raises(NotFound, match=r"linux/arm64, linux/amd64|linux/amd64, linux/arm64"):
        select_platform(parse_index(index), architecture="s390x")


def test_layout_tags_are_replaced_and_kept(tmp_path: Path) -> None:
    init_layout(tmp_path)
    config = put_blob_bytes(tmp_path, b"{}")
    m1 = Manifest(config=Descriptor(OCI_CONFIG, config, 2), layers=()).to_bytes()
    d1 = Descriptor.of(OCI_MANIFEST, m1)
    put_blob_bytes(tmp_path, m1)
    write_index(tmp_path, d1, "a")
    write_index(tmp_path, d1, "b")
    write_index(tmp_path, d1, "a")
    assert len(parse_index((tmp_path / "index.json").read_bytes())) == 2
    assert read_layout(tmp_path, "b")[0].digest == d1.digest
    with pytest.raises(NotFound, match="no tag 'c'"):
        read_layout(tmp_path, "c")
