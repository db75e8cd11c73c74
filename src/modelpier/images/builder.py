"""``ImageBuilder``: pull a base, write the layers ``build.py`` plans, push or write a layout.

The I/O around the pure plan. Base images come from any OCI registry (an index is narrowed to
linux/amd64); their layers are cached by digest, and the base's Python is found by reading their
file lists once. Our layers are cached by what decides their content (see ``cache.py``), so a new
version of a model on a known environment writes one small layer. Pushing asks the registry for
each blob first (HEAD) and sends only what it lacks: a base layer from another repository of the
same registry is mounted, everything else uploaded in resumable chunks; the manifest goes last.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.images import environment
from modelpier.images.build import (
    MODEL_DIR,
    BasePython,
    BuiltImage,
    BuiltLayer,
    ImagePlan,
    RunSettings,
    model_settings,
    pier_script_entry,
    plan_image,
    platform_settings,
    venv_entries,
)
from modelpier.images.cache import ImageCache
from modelpier.images.distribution.auth import Credentials, find_credentials
from modelpier.images.distribution.client import DEFAULT_CHUNK_BYTES, DistributionClient
from modelpier.images.distribution.reference import ImageRef
from modelpier.images.oci.layout import (
    INDEX_TYPES,
    OCI_MANIFEST,
    ImageConfig,
    Manifest,
    blob_path,
    init_layout,
    parse_index,
    put_blob_bytes,
    put_blob_file,
    read_layout,
    select_platform,
    write_index,
)
from modelpier.images.oci.tar import LayerEntry, list_layer, tree_entries, write_layer
from modelpier.registry.domain import ModelVersion
from modelpier.registry.version_folder import FILES_DIR, MANIFEST_FILE, manifest_bytes

_PYTHON = re.compile(r"^(?:\./)?(usr/local/bin|usr/bin)/python(3\.\d+)$")
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BaseImage:
    ref: ImageRef  # as asked for, with the manifest's digest
    manifest: Manifest
    config: ImageConfig
    python: BasePython


def find_python(names: Iterable[str]) -> BasePython | None:
    """The base's interpreter from its layers' file names: ``/usr/local/bin`` (python's official
    images) before ``/usr/bin`` (Debian's), the newest version first."""
    found = sorted((m.group(1) != "usr/local/bin", tuple(-int(x) for x in m.group(2).split(".")), m.group(0))
                    for name in names if (m := _PYTHON.match(name)))
    if not found:
        return None
    path = found[0][2].removeprefix("./")
    return BasePython(path=f"/{path}", version=path.rsplit("python", 1)[1])


class ImageBuilder:
    """Builds images into an ``ImageCache``; ``insecure`` hosts are spoken to over plain HTTP."""

    def __init__(self, cache: ImageCache, *, insecure: Iterable[str] = (),
                 credentials: Callable[[str], Credentials | None] = find_credentials, say: Say = lambda _: None,
                 chunk_bytes: int | None = None) -> None:
        self.cache = cache
        self.insecure = set(insecure)
        self.credentials = credentials
        self.say = say
        self.chunk_bytes = chunk_bytes
        self._clients: dict[str, DistributionClient] = {}

    def client(self, host: str) -> DistributionClient:
        if host not in self._clients:
            self._clients[host] = DistributionClient(host, insecure=host in self.insecure,
                                                     credentials=self.credentials(host),
                                                     chunk_bytes=self.chunk_bytes or DEFAULT_CHUNK_BYTES)
        return self._clients[host]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- the base ---------------------------------------------------------------------------------
    def pull_base(self, text: str) -> BaseImage:
        ref = ImageRef.parse(text)
        client = self.client(ref.api_host)
        data, media_type, digest = client.get_manifest(ref.repository, ref.reference)
        if media_type in INDEX_TYPES or b'"manifests"' in data[:2000]:
            chosen = select_platform(parse_index(data))
            data, media_type, digest = client.get_manifest(ref.repository, chosen.digest)
        manifest = Manifest.parse(data)
        if not self.cache.has_blob(manifest.config.digest):
            self.cache.put_bytes(manifest.config.digest, client.get_blob(ref.repository, manifest.config.digest))
        config = ImageConfig.parse(self.cache.blob(manifest.config.digest).read_bytes())
        if config.raw.get("architecture", "amd64") != "amd64" or config.raw.get("os", "linux") != "linux":
            raise InvalidArtifact(f"base image {text} is {config.raw.get('os')}/{config.raw.get('architecture')}; "
                                  f"modelpier builds linux/amd64 images")
        for layer in manifest.layers:
            if not self.cache.has_blob(layer.digest):
                self.say(f"pulling base layer {layer.digest[:19]} ({layer.size / 1e6:.1f} MB)")
                client.fetch_blob(ref.repository, layer.digest, self.cache.blob(layer.digest))
        python = self.cache.base_python(digest)
        if python is None:
            python = find_python(m.name for layer in manifest.layers for m in list_layer(self.cache.blob(layer.digest)))
            if python is None:
                raise InvalidArtifact(f"base image {text} has no python3.X in /usr/local/bin or /usr/bin; "
                                      f"use a base with Python (e.g. python:3.11-slim)")
            self.cache.put_base_python(digest, python)
        return BaseImage(ref=ImageRef(ref.registry, ref.repository, ref.tag, digest), manifest=manifest,
                         config=config, python=python)

    # -- our layers -------------------------------------------------------------------------------
    def _layer(self, key: str, created_by: str, entries: Callable[[], list[LayerEntry]]) -> BuiltLayer:
        cached = self.cache.layer(key)
        if cached is not None:
            return cached
        tmp = self.cache.work_dir("layers") / f"{key.removeprefix('sha256:')}.tar.gz"
        written = write_layer(entries(), tmp)
        self.cache.adopt(tmp, written.digest)
        layer = BuiltLayer(digest=written.digest, size=written.size, diff_id=written.diff_id, created_by=created_by)
        self.cache.put_layer(key, layer)
        return layer

    def environment_layer(self, python: BasePython, requirements: Sequence[str], constraints: Sequence[str]
                          ) -> BuiltLayer:
        key = environment.environment_key(requirements, constraints, python.version) + python.path

        def entries() -> list[LayerEntry]:
            self.say(f"installing {len(requirements)} requirements for Python {python.version} (cached afterwards)")
            work = self.cache.work_dir("env")
            site = work / "site-packages"
            shutil.rmtree(site, ignore_errors=True)
            environment.install(requirements, constraints, python.version, site, work)
            environment.compile_bytecode(site, python.version, f"/{python.site_packages}")
            return [*venv_entries(python), *tree_entries(site, python.site_packages)]

        return self._layer(_key(key), "pier build image: environment " + " ".join(requirements), entries)

    def modelpier_layer(self, python: BasePython) -> BuiltLayer:
        source, digest = environment.modelpier_source()

        def entries() -> list[LayerEntry]:
            staging = self.cache.work_dir("modelpier") / "site-packages"
            environment.stage_modelpier(source, python.version, staging, f"/{python.site_packages}")
            return [*tree_entries(staging, python.site_packages), pier_script_entry()]

        return self._layer(_key(digest + python.path), "pier build image: modelpier", entries)

    def model_layer(self, version: ModelVersion, folder: Path) -> BuiltLayer:
        manifest = manifest_bytes(version)

        def entries() -> list[LayerEntry]:
            out = [LayerEntry("opt", "dir", 0o755), LayerEntry("opt/pier", "dir", 0o755),
                   LayerEntry(MODEL_DIR, "dir", 0o755), LayerEntry(f"{MODEL_DIR}/{FILES_DIR}", "dir", 0o755),
                   LayerEntry(f"{MODEL_DIR}/{MANIFEST_FILE}", "file", 0o644, data=manifest)]
            for entry in version.files:
                source = folder / entry.path
                parts = entry.path.split("/")
                out.extend(LayerEntry(f"{MODEL_DIR}/{FILES_DIR}/{'/'.join(parts[:i])}", "dir", 0o755)
                           for i in range(1, len(parts)))
                out.append(LayerEntry(f"{MODEL_DIR}/{FILES_DIR}/{entry.path}", "file", 0o644, size=entry.size,
                                      source=source))
            return out

        return self._layer(_key(version.digest + manifest.decode()), f"pier build image: model {version.ref}", entries)

    # -- images -----------------------------------------------------------------------------------
    def build_model(self, base: BaseImage, version: ModelVersion, folder: Path) -> BuiltImage:
        requirements = environment.locked_requirements(version)
        warning = environment.check_python(version, base.python.version)
        if warning:
            self.say(f"warning: {warning}")
        env_requirements = (*requirements, *environment.modelpier_requirements())
        constraints = environment.host_constraints(requirements)
        env = self.environment_layer(base.python, env_requirements, constraints)
        pier = self.modelpier_layer(base.python)
        model = self.model_layer(version, folder)
        from modelpier import __version__

        run = model_settings(version.model, version.version, version.digest, environment_digest=env.diff_id,
                             modelpier_version=__version__, base=_base_name(base.ref), base_digest=str(base.ref.digest))
        return self._image(base, (env, pier, model), run)

    def build_platform(self, base: BaseImage, extras: Sequence[str]) -> BuiltImage:
        requirements = environment.modelpier_requirements(extras)
        env = self.environment_layer(base.python, requirements, environment.host_constraints(()))
        pier = self.modelpier_layer(base.python)
        from modelpier import __version__

        run = platform_settings(__version__, base=_base_name(base.ref), base_digest=str(base.ref.digest),
                                environment_digest=env.diff_id)
        return self._image(base, (env, pier), run)

    def _image(self, base: BaseImage, layers: tuple[BuiltLayer, ...], run: RunSettings) -> BuiltImage:
        plan = plan_image(base.config, base.manifest.layers, layers, run)
        self.cache.put_bytes(plan.config_descriptor.digest, plan.config)
        self.cache.put_bytes(plan.manifest_descriptor.digest, plan.manifest)
        return BuiltImage(plan=plan, base_repository=base.ref.repository, base_host=base.ref.api_host)

    # -- output -----------------------------------------------------------------------------------
    def write_layout(self, image: BuiltImage, layout: Path, tag: str) -> None:
        """Write the image into an OCI image layout (skopeo, umoci, podman, containerd read it)."""
        init_layout(layout)
        for layer in image.plan.layers:
            put_blob_file(layout, layer.digest, self.cache.blob(layer.digest))
        put_blob_bytes(layout, image.plan.config)
        put_blob_bytes(layout, image.plan.manifest)
        write_index(layout, image.plan.manifest_descriptor, tag)

    def push(self, image: BuiltImage, target: ImageRef) -> ImageRef:
        """Push the image to ``target`` (a tag, or none: by digest only); the reference by digest."""
        return push_blobs(self.client(target.api_host), target, image.plan, self.cache.blob,
                          mount_from=image.base_repository if image.base_host == target.api_host else None,
                          say=self.say)


def push_blobs(client: DistributionClient, target: ImageRef, plan: ImagePlan, blob_file: Callable[[str], Path], *,
               mount_from: str | None = None, say: Say = lambda _: None) -> ImageRef:
    """Send what the registry lacks of ``plan`` (HEAD first; mount from ``mount_from`` when it is
    in the same registry; upload otherwise), then the manifest under the tag."""
    if target.digest:
        raise InvalidInput(f"push to {target}: give a tag (or none), not a digest; the digest is the result")
    repo = target.repository
    for descriptor in [*plan.layers, plan.config_descriptor]:
        if client.blob_exists(repo, descriptor.digest):
            say(f"exists   {descriptor.digest[:19]}")
            continue
        location = None
        if mount_from is not None and mount_from != repo:
            location = client.mount_blob(repo, descriptor.digest, mount_from)
            if location is None:
                say(f"mounted  {descriptor.digest[:19]} from {mount_from}")
                continue
        say(f"upload   {descriptor.digest[:19]} ({descriptor.size / 1e6:.1f} MB)")
        client.upload_blob(repo, descriptor.digest, blob_file(descriptor.digest), location=location)
    digest = client.put_manifest(repo, target.tag or plan.manifest_descriptor.digest, plan.manifest, OCI_MANIFEST)
    return target.with_digest(digest)


def _key(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _base_name(ref: ImageRef) -> str:
    return f"{ref.registry}/{ref.repository}:{ref.tag}" if ref.tag else f"{ref.registry}/{ref.repository}"


def push_layout(client: DistributionClient, layout: Path, tag: str, target: ImageRef, say: Say = lambda _: None
                ) -> ImageRef:
    """Push the image ``tag`` of an OCI layout (e.g. from ``rootfs.layout_from_rootfs``) to ``target``."""
    descriptor, manifest = read_layout(layout, tag)
    plan = ImagePlan(config=blob_path(layout, manifest.config.digest).read_bytes(),
                     manifest=blob_path(layout, descriptor.digest).read_bytes(), layers=manifest.layers)
    return push_blobs(client, target, plan, lambda digest: blob_path(layout, digest), say=say)
