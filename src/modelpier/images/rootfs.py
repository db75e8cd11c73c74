"""A root file system folder as a one-layer base image (an OCI layout): how to make a base
without any registry, e.g. from ``debootstrap --variant=minbase --include=python3 bookworm``.

Owners and modes are kept (setuid binaries, root-owned files), times are not; apt's downloaded
packages, documentation, man pages and locales are left out, as slim images leave them out.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

from modelpier.images.oci.layout import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    canonical_json,
    init_layout,
    put_blob_bytes,
    put_blob_file,
    write_index,
)
from modelpier.images.oci.tar import tree_entries, write_layer

SLIM_SKIP: Final = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                    "usr/share/info", "usr/share/locale")
DEFAULT_PATH: Final = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def layout_from_rootfs(rootfs: Path, layout: Path, tag: str, *, skip: tuple[str, ...] = SLIM_SKIP) -> Descriptor:
    """Write ``rootfs`` as a linux/amd64 image tagged ``tag`` into the OCI layout ``layout``;
    the manifest's descriptor."""
    init_layout(layout)
    present = tuple(s for s in skip if (rootfs / s).exists())
    entries = tree_entries(rootfs, "", keep_owner=True, keep_mode=True, skip=present)
    with tempfile.TemporaryDirectory(dir=layout) as tmp:
        written = write_layer(entries, Path(tmp) / "layer.tar.gz")
        put_blob_file(layout, written.digest, written.path)
    config = canonical_json({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [DEFAULT_PATH], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [written.diff_id]},
        "history": [{"created_by": f"layout_from_rootfs {rootfs.name}"}],
    })
    put_blob_bytes(layout, config)
    manifest = Manifest(config=Descriptor.of(OCI_CONFIG, config),
                        layers=(Descriptor(OCI_LAYER_GZIP, written.digest, written.size),)).to_bytes()
    put_blob_bytes(layout, manifest)
    descriptor = Descriptor.of(OCI_MANIFEST, manifest)
    write_index(layout, descriptor, tag)
    return descriptor
