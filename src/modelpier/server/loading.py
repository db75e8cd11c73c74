"""Turn a ``ModelSource`` into a runtime: a plain file/folder, or a registry reference.

A folder written by ``pier build image`` (a version folder: ``pier-version.json`` and ``files/``)
is served as the registry version it records: its name, version, flavor and signature, its files
verified against their digests. Otherwise a source is a plain path when it contains a path separator, starts with ``~``/``.``/``file://``,
or names something that exists; anything else is a registry reference (``iris``, ``iris:3``,
``iris:production``), resolved and materialised (digest-verified) through the registry. Runs in a
worker thread at start-up: loading reads files and unpickles.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpier.errors import InvalidSpec
from modelpier.registry.service import Registry
from modelpier.registry.version_folder import is_version_folder, read_version_folder
from modelpier.runtimes.base import ModelRuntime
from modelpier.server.config import ModelOptions, ModelSource
from modelpier.spec.names import ModelRef
from modelpier.spec.signature import Signature

log = logging.getLogger("modelpier.server")

_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    name: str
    version: str | None  # None for a plain path: it has no version
    flavor: str
    runtime: ModelRuntime
    # How this process differs from the environment the version was saved in (major/minor versions
    # of its framework, numpy or Python): shown in the model's metadata; empty when it does not.
    environment_warnings: tuple[str, ...] = ()


def is_plain_path(ref: str) -> bool:
    if ref.startswith(("file://", "~", ".", "/")) or "/" in ref or "\\" in ref:
        return True
    return Path(ref).exists()


def _path_of(ref: str) -> Path:
    return Path(ref.removeprefix("file://")).expanduser()


def served_name(source: ModelSource) -> str:
    """The name clients use in URLs, known before loading (so early requests get 503, not 404)."""
    if source.name is not None:
        name = source.name
    elif is_plain_path(source.ref) and is_version_folder(_path_of(source.ref)):
        name = read_version_folder(_path_of(source.ref), verify=False).model
    elif is_plain_path(source.ref):
        path = _path_of(source.ref)
        name = path.name if path.is_dir() else path.stem
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    else:
        name = ModelRef.parse(source.ref).name
    if not _SERVED_NAME.match(name):
        raise InvalidSpec(
            f"model name {name!r} is not usable in URLs: use letters, digits, '-', '_' and '.'",
            details={"name": name})
    return name


def load_model(source: ModelSource, options: ModelOptions,
               registry: Callable[[], Registry] | None) -> LoadedModel:
    """Load one model (blocking). ``registry`` builds the registry on first use."""
    from modelpier.runtimes.loader import load_runtime, prepare_plain_path

    name = served_name(source)
    signature: Signature | None = None
    version: str | None = None
    skew: tuple[str, ...] = ()
    if is_plain_path(source.ref) and is_version_folder(_path_of(source.ref)):
        recorded = read_version_folder(_path_of(source.ref))
        flavor, folder, signature, version = recorded.flavor, recorded.files, recorded.signature, str(recorded.version)
    elif is_plain_path(source.ref):
        flavor, folder = prepare_plain_path(_path_of(source.ref))
    else:
        if registry is None:
            raise InvalidSpec(f"{source.ref!r} is not a file, and no registry is configured to resolve it")
        reg = registry()
        found = reg.resolve(source.ref)
        folder = reg.materialize(found)
        flavor, signature, version = found.flavor, found.signature, str(found.version)
        skew = _skew(found.environment, flavor, name)
    runtime = load_runtime(flavor, folder, signature)
    return LoadedModel(name=name, version=version, flavor=str(flavor), runtime=runtime, environment_warnings=skew)


def _skew(environment: dict[str, Any], flavor: str, name: str) -> tuple[str, ...]:
    """Differences between the saving environment and this one, each logged as a warning."""
    from modelpier.runtimes.environment import EnvironmentSkewWarning, warn_on_skew

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnvironmentSkewWarning)  # logged below, once, with the model's name
        messages = tuple(warn_on_skew(environment, flavor))
    for message in messages:
        log.warning("model %s: %s (serve it isolated to run it in its own locked environment)", name, message)
    return messages

