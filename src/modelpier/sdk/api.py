"""The Python SDK's registry functions: ``save_model``, ``load_model``, ``import_mlflow``.

Each opens the registry named by the settings (``PIER_HOME`` by default) unless one is passed in,
packages or reads the artifact into a temporary folder, stores its blobs, then records the version:
the same write order as every other path into the registry, so a failure leaves no version behind.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelpier.errors import InvalidInput
from modelpier.registry.domain import Flavor, ModelVersion, NewVersion
from modelpier.registry.factory import build_registry
from modelpier.registry.lock import EnvironmentLock, LockSource, parse_requirements, with_lock
from modelpier.registry.service import Registry
from modelpier.runtimes.environment import warn_on_skew
from modelpier.runtimes.loader import load_runtime
from modelpier.sdk.mlflow_import import read_mlflow_model
from modelpier.sdk.packaging import PackagedModel, package_model
from modelpier.settings import Settings, load_settings
from modelpier.spec.names import validate_name
from modelpier.spec.signature import Signature


@contextmanager
def _registry(registry: Registry | None, settings: Settings | None) -> Iterator[tuple[Registry, Settings]]:
    settings = settings or load_settings()
    if registry is not None:
        yield registry, settings
        return
    owned = build_registry(settings)
    try:
        yield owned, settings
    finally:
        owned.close()


def _caller_source() -> str | None:
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c") else None
    return os.path.abspath(script) if script and os.path.exists(script) else None


def read_lock(requirements: str | Path, *, python: str | None = None) -> EnvironmentLock:
    """The lock a requirements file of exact pins gives (``pip freeze``, ``uv pip compile
    --generate-hashes``), for ``python`` (default: this interpreter's version)."""
    path = Path(requirements)
    if not path.is_file():
        raise InvalidInput(f"requirements file {path} does not exist")
    return parse_requirements(path.read_text(), python=python or platform.python_version(), source=LockSource.USER)


def _register(reg: Registry, settings: Settings, name: str, packaged: PackagedModel, *,
              tags: Mapping[str, str] | None, metrics: Mapping[str, float] | None,
              params: Mapping[str, Any] | None, description: str, source: str | None,
              requirements: str | Path | None = None) -> ModelVersion:
    environment = packaged.environment
    if requirements is not None:
        environment = with_lock(environment, read_lock(requirements))
    files = reg.store_files(packaged.directory)
    merged_params = {**packaged.params, **{k: str(v) for k, v in (params or {}).items()}}
    version, _created = reg.register(NewVersion(
        model=name, flavor=packaged.flavor, files=files, signature=packaged.signature,
        input_example=packaged.input_example, metrics={k: float(v) for k, v in (metrics or {}).items()},
        params=merged_params, tags=dict(tags or {}), description=description,
        environment=environment, created_by=settings.user, source=source))
    return version


def save_model(
    name: str,
    model_or_path: Any,
    *,
    flavor: Flavor | str | None = None,
    signature: Signature | dict[str, Any] | None = None,
    input_example: Any = None,
    tags: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    description: str = "",
    source: str | None = None,
    requirements: str | Path | None = None,
    registry: Registry | None = None,
    settings: Settings | None = None,
) -> ModelVersion:
    """Register a model object or file as the next version of ``name``; return that version.

    The flavor and signature are inferred from the object and ``input_example`` when not given.
    Saving an artifact identical to an existing version returns that version instead of a copy.
    The version's environment lock is taken from this process (the installed framework and what it
    needs, exactly pinned), or from ``requirements``, a file of exact pins.
    """
    validate_name(name)
    with _registry(registry, settings) as (reg, cfg), tempfile.TemporaryDirectory(prefix="pier-save-") as tmp:
        packaged = package_model(model_or_path, Path(tmp) / "artifact", flavor=flavor, signature=signature,
                                 input_example=input_example)
        if source is None:
            source = str(Path(model_or_path).resolve()) if isinstance(model_or_path, str | Path) \
                else _caller_source()
        return _register(reg, cfg, name, packaged, tags=tags, metrics=metrics, params=params,
                         description=description, source=source, requirements=requirements)


def load_model(ref: str, *, registry: Registry | None = None, settings: Settings | None = None) -> Any:
    """The framework's own model object for ``ref`` (``name``, ``name:3``, ``name:alias``).

    Warns with ``EnvironmentSkewWarning`` when the installed framework differs in a major or minor
    version from the one the model was saved with.
    """
    with _registry(registry, settings) as (reg, _cfg):
        version = reg.resolve(ref)
        path = reg.materialize(version)
    warn_on_skew(version.environment, version.flavor)
    return load_runtime(version.flavor, path, version.signature).native


def import_mlflow(
    path_or_uri: str | Path,
    name: str,
    *,
    tags: Mapping[str, str] | None = None,
    description: str = "",
    requirements: str | Path | None = None,
    registry: Registry | None = None,
    settings: Settings | None = None,
) -> ModelVersion:
    """Register an MLflow model directory (its MLmodel, flavors, signature, input example) as ``name``.

    Needs no mlflow installation for local paths and ``file://`` URIs. The environment lock comes
    from the model's ``requirements.txt`` and ``python_env.yaml``, or from ``requirements``.
    """
    validate_name(name)
    packaged = read_mlflow_model(path_or_uri)
    with _registry(registry, settings) as (reg, cfg):
        return _register(reg, cfg, name, packaged, tags=tags, metrics=None, params=None,
                         description=description, source=str(path_or_uri), requirements=requirements)
