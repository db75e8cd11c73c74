"""Plan an image purely: which layers, in which order, with which config and manifest.

An image modelpier builds is the base's layers, then three of its own, ordered from the least to the
most often changing, so a registry and a node's cache keep what did not change:

1. environment: a virtual environment at ``/opt/pier/venv`` (its ``pyvenv.cfg`` points at the
   base's Python) with the locked requirements of the model and modelpier's own dependencies;
2. modelpier: the ``modelpier`` package and the ``pier`` command;
3. model: the version's files and their manifest at ``/opt/pier/model`` (``pier-version.json``).

A new version of a model on the same environment changes only the last layer. Nothing here does
I/O: the builder (``builder.py``) writes the layers and hands their digests in; the config holds no
timestamp, so equal inputs give an equal config, manifest and image digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from modelpier.errors import InvalidArtifact
from modelpier.images.oci.layout import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    canonical_json,
)
from modelpier.images.oci.tar import LayerEntry

PIER_ROOT: Final = "opt/pier"
VENV: Final = "opt/pier/venv"
MODEL_DIR: Final = "opt/pier/model"
HTTP_PORT: Final = 8080  # the ports the Kubernetes backend's pods expect (backends/kubernetes/options.py)
GRPC_PORT: Final = 8081
RUN_AS: Final = "10001:10001"  # non-root, as the backend's pod securityContext runs it (pods.RUN_AS)
IMAGE_HOME: Final = "/tmp/modelpier"  # noqa: S108  # PIER_HOME inside the container; Kubernetes mounts its own
LABEL_PREFIX: Final = "io.modelpier"


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    """A layer blob the builder wrote: its descriptor digest/size, ``diff_id`` and history line."""

    digest: str
    size: int
    diff_id: str
    created_by: str

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_LAYER_GZIP, self.digest, self.size)


@dataclass(frozen=True, slots=True)
class BasePython:
    """The base image's interpreter: ``/usr/bin/python3.11`` and ``"3.11"``."""

    path: str
    version: str

    @property
    def site_packages(self) -> str:
        return f"{VENV}/lib/python{self.version}/site-packages"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The container part of the config modelpier sets on top of the base's."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    exposed_ports: tuple[int, ...] = (HTTP_PORT, GRPC_PORT)
    user: str = RUN_AS
    workdir: str = "/opt/pier"


@dataclass(frozen=True, slots=True)
class ImagePlan:
    config: bytes
    manifest: bytes
    layers: tuple[Descriptor, ...] = field(default=())

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_CONFIG, self.config)

    @property
    def manifest_descriptor(self) -> Descriptor:
        return Descriptor.of(OCI_MANIFEST, self.manifest)


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """A planned image whose blobs are in the builder's cache; ``base_*`` say where its base came
    from (a push to the same registry mounts the base's layers instead of uploading them)."""

    plan: ImagePlan
    base_repository: str
    base_host: str

    @property
    def digest(self) -> str:
        return self.plan.manifest_descriptor.digest


def venv_entries(python: BasePython) -> list[LayerEntry]:
    """A virtual environment's skeleton on the base's Python, written without running it: the
    ``pyvenv.cfg`` the interpreter reads at start-up and ``bin/python`` links to the base's one."""
    home = python.path.rsplit("/", 1)[0]
    cfg = (f"home = {home}\ninclude-system-site-packages = false\nversion = {python.version}\n"
           f"executable = {python.path}\n")
    return [
        LayerEntry(f"{VENV}/pyvenv.cfg", "file", 0o644, data=cfg.encode()),
        LayerEntry(f"{VENV}/bin", "dir", 0o755),
        LayerEntry(f"{VENV}/bin/python", "symlink", 0o777, link=python.path),
        LayerEntry(f"{VENV}/bin/python3", "symlink", 0o777, link="python"),
        LayerEntry(f"{VENV}/bin/python{python.version}", "symlink", 0o777, link="python"),
        LayerEntry(f"{VENV}/lib/python{python.version}/site-packages", "dir", 0o755),
    ]


def pier_script_entry() -> LayerEntry:
    """``/opt/pier/venv/bin/pier``, the console script pip would write, on the venv's interpreter."""
    script = (f"#!/{VENV}/bin/python\nimport sys\nfrom modelpier.cli.main import main\n\n"
              "if __name__ == \"__main__\":\n    sys.exit(main())\n")
    return LayerEntry(f"{VENV}/bin/pier", "file", 0o755, data=script.encode())


def model_settings(model: str, version: int, model_digest: str, *, environment_digest: str,
                   modelpier_version: str, base: str, base_digest: str) -> RunSettings:
    """How an image of one model version runs: ``pier serve`` on its version folder, on the ports
    and as the user the Kubernetes backend's pods expect; a pod may append ``pier serve`` options
    (workers, batching, timeout) as the container's ``args``, which replace ``cmd``."""
    return RunSettings(
        entrypoint=(f"/{VENV}/bin/pier", "serve", f"{model}=/{MODEL_DIR}"),
        cmd=("--host", "0.0.0.0", "--http-port", str(HTTP_PORT), "--grpc-port", str(GRPC_PORT)),  # noqa: S104  # a container listens on every interface
        env=_env(),
        labels={**_labels(modelpier_version, base, base_digest, environment_digest),
                f"{LABEL_PREFIX}.model": model, f"{LABEL_PREFIX}.version": str(version),
                f"{LABEL_PREFIX}.model-digest": model_digest,
                "org.opencontainers.image.title": f"{model}:{version}"})


def platform_settings(modelpier_version: str, *, base: str, base_digest: str, environment_digest: str) -> RunSettings:
    """The platform image: the ``pier`` command itself (``pier serve``, ``pier models pull``,
    ``pier server``...), as the backend's default image runs it."""
    return RunSettings(entrypoint=(f"/{VENV}/bin/pier",), cmd=("--help",), env=_env(),
                       labels={**_labels(modelpier_version, base, base_digest, environment_digest),
                               "org.opencontainers.image.title": "modelpier"})


def _env() -> dict[str, str]:
    return {"PIER_HOME": IMAGE_HOME, "PYTHONUNBUFFERED": "1",
            # The root file system is read-only on Kubernetes; byte code is compiled into the layers.
            "PYTHONDONTWRITEBYTECODE": "1", "VIRTUAL_ENV": f"/{VENV}"}


def _labels(modelpier_version: str, base: str, base_digest: str, environment_digest: str) -> dict[str, str]:
    return {"org.opencontainers.image.version": modelpier_version,
            "org.opencontainers.image.base.name": base, "org.opencontainers.image.base.digest": base_digest,
            f"{LABEL_PREFIX}.environment": environment_digest}


def _merged_env(base: Sequence[str], ours: Mapping[str, str]) -> list[str]:
    env = dict(item.partition("=")[::2] for item in base)
    env.update(ours)
    env["PATH"] = f"/{VENV}/bin:" + (env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return [f"{k}={v}" for k, v in sorted(env.items())]


def plan_config(base: ImageConfig, layers: Sequence[BuiltLayer], run: RunSettings) -> bytes:
    """The image config: the base's, with our layers' diff_ids and history and our run settings.
    No ``created`` time anywhere, so the bytes depend on the inputs only."""
    container: dict[str, Any] = base.container
    container.update({
        "Entrypoint": list(run.entrypoint), "Cmd": list(run.cmd), "User": run.user, "WorkingDir": run.workdir,
        "Env": _merged_env(container.get("Env") or [], run.env),
        "ExposedPorts": {f"{p}/tcp": {} for p in run.exposed_ports},
        "Labels": {**(container.get("Labels") or {}), **run.labels},
    })
    container.pop("Healthcheck", None)  # the base's check would probe something else
    raw = {key: value for key, value in base.raw.items() if key not in ("created", "container", "container_config",
                                                                         "docker_version", "author")}
    raw.update({
        "architecture": base.raw.get("architecture", "amd64"), "os": base.raw.get("os", "linux"),
        "config": container,
        "rootfs": {"type": "layers", "diff_ids": [*base.diff_ids, *(layer.diff_id for layer in layers)]},
        "history": [{k: v for k, v in h.items() if k != "created"} for h in base.history]
                   + [{"created_by": layer.created_by, "comment": "pier build image"} for layer in layers],
    })
    return canonical_json(raw)


def plan_image(base_config: ImageConfig, base_layers: Sequence[Descriptor], layers: Sequence[BuiltLayer],
               run: RunSettings) -> ImagePlan:
    """The config and manifest of base + ``layers`` (in order: environment, modelpier, model)."""
    if len(base_config.diff_ids) != len(base_layers):
        raise InvalidArtifact(f"the base image lists {len(base_layers)} layers but its config "
                              f"{len(base_config.diff_ids)} diff_ids")
    config = plan_config(base_config, layers, run)
    all_layers = (*(Descriptor(OCI_LAYER_GZIP, d.digest, d.size) for d in base_layers),
                  *(layer.descriptor for layer in layers))
    manifest = Manifest(config=Descriptor.of(OCI_CONFIG, config), layers=all_layers)
    return ImagePlan(config=config, manifest=manifest.to_bytes(), layers=all_layers)
