"""One registry surface for CLI commands, whether it is the local store or a remote server.

Commands call these methods and print wire bodies, so ``pier models get iris`` looks the same
with or without ``--remote``. Both act in one project's registry: ``PIER_PROJECT``'s, else
``default``'s (model names are unique per project).
"""

from __future__ import annotations

from typing import Protocol

from modelpier.registry.lock import EnvironmentLock
from modelpier.registry.service import Registry
from modelpier.registry.wire import LockBody, ModelBody, VersionBody
from modelpier.sdk.control_api import ControlClient, models
from modelpier.spec.names import ModelRef


def _selector(ref: ModelRef) -> str:
    return str(ref.version or ref.alias or "latest")


class RegistryAccess(Protocol):
    where: str

    def list_models(self, search: str | None) -> list[ModelBody]: ...
    def get_model(self, name: str) -> ModelBody: ...
    def list_versions(self, name: str) -> list[VersionBody]: ...
    def get_version(self, ref: ModelRef) -> VersionBody: ...
    def set_alias(self, name: str, alias: str, version: int) -> VersionBody: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def set_tag(self, ref: ModelRef, key: str, value: str) -> None: ...
    def delete_tag(self, ref: ModelRef, key: str) -> None: ...
    def delete(self, ref: ModelRef) -> None: ...
    def set_lock(self, ref: ModelRef, lock: EnvironmentLock) -> VersionBody: ...


class LocalAccess:
    def __init__(self, registry: Registry, where: str) -> None:
        self.registry = registry
        self.where = where

    def list_models(self, search: str | None) -> list[ModelBody]:
        return [ModelBody.of(m) for m in self.registry.list_models(search=search)]

    def get_model(self, name: str) -> ModelBody:
        return ModelBody.of(self.registry.get_model(name))

    def list_versions(self, name: str) -> list[VersionBody]:
        return [VersionBody.of(v) for v in self.registry.list_versions(name)]

    def get_version(self, ref: ModelRef) -> VersionBody:
        # Strictly this registry's project, as the remote's project routes answer.
        return VersionBody.of(self.registry.resolve(ref, project=self.registry.project))

    def set_alias(self, name: str, alias: str, version: int) -> VersionBody:
        return VersionBody.of(self.registry.set_alias(name, alias, version))

    def delete_alias(self, name: str, alias: str) -> None:
        self.registry.delete_alias(name, alias)

    def set_tag(self, ref: ModelRef, key: str, value: str) -> None:
        self.registry.set_tag(str(ref), key, value)

    def delete_tag(self, ref: ModelRef, key: str) -> None:
        self.registry.delete_tag(str(ref), key)

    def set_lock(self, ref: ModelRef, lock: EnvironmentLock) -> VersionBody:
        return VersionBody.of(self.registry.set_lock(ref, lock, project=self.registry.project))

    def delete(self, ref: ModelRef) -> None:
        if ref.version is None and ref.alias is None:
            self.registry.delete_model(ref.name)
        else:
            version = self.registry.resolve(ref, project=self.registry.project)
            self.registry.delete_version(version.model, version.version)


class RemoteAccess:
    """A remote control plane's registry: ``project``'s (None: the default project's)."""

    def __init__(self, client: ControlClient, project: str | None) -> None:
        self.client, self.project = client, project
        self.where = client.base_url

    def list_models(self, search: str | None) -> list[ModelBody]:
        return self.client.send(models.list_models(self.project, search=search))

    def get_model(self, name: str) -> ModelBody:
        return self.client.send(models.get_model(self.project, name))

    def list_versions(self, name: str) -> list[VersionBody]:
        return self.client.send(models.list_versions(self.project, name))

    def get_version(self, ref: ModelRef) -> VersionBody:
        return self.client.send(models.get_version(self.project, ref.name, _selector(ref)))

    def set_alias(self, name: str, alias: str, version: int) -> VersionBody:
        return self.client.send(models.set_alias(self.project, name, alias, version))

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.send(models.delete_alias(self.project, name, alias))

    def set_tag(self, ref: ModelRef, key: str, value: str) -> None:
        if ref.version is None and ref.alias is None:
            self.client.send(models.set_model_tag(self.project, ref.name, key, value))
        else:
            self.client.send(models.set_version_tag(self.project, ref.name, _selector(ref), key, value))

    def delete_tag(self, ref: ModelRef, key: str) -> None:
        if ref.version is None and ref.alias is None:
            self.client.send(models.delete_model_tag(self.project, ref.name, key))
        else:
            self.client.send(models.delete_version_tag(self.project, ref.name, _selector(ref), key))

    def set_lock(self, ref: ModelRef, lock: EnvironmentLock) -> VersionBody:
        return self.client.send(models.set_lock(self.project, ref.name, _selector(ref), LockBody.of(lock)))

    def delete(self, ref: ModelRef) -> None:
        if ref.version is None and ref.alias is None:
            self.client.send(models.delete_model(self.project, ref.name))
        else:
            self.client.send(models.delete_version(self.project, ref.name, self.get_version(ref).version))
