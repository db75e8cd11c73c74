"""One registry surface for CLI commands, whether it is the local store or a remote server.

Commands call these methods and print wire bodies, so ``pier models get iris`` looks the same
with or without ``--remote``. Both act in one project's registry: ``PIER_PROJECT``'s, else
``default``'s (model names are unique per project).
"""

from __future__ import annotations

from typing import Protocol

from modelpier.registry.lock import EnvironmentLock
from modelpier.registry.remote import RegistryClient
from modelpier.registry.service import Registry
from modelpier.registry.wire import LockBody, ModelBody, VersionBody
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
    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.where = client.base_url

    def list_models(self, search: str | None) -> list[ModelBody]:
        return self.client.list_models(search=search)

    def get_model(self, name: str) -> ModelBody:
        return self.client.get_model(name)

    def list_versions(self, name: str) -> list[VersionBody]:
        return self.client.list_versions(name)

    def get_version(self, ref: ModelRef) -> VersionBody:
        return self.client.get_version(ref.name, _selector(ref))

    def set_alias(self, name: str, alias: str, version: int) -> VersionBody:
        return self.client.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete_alias(name, alias)

    def set_tag(self, ref: ModelRef, key: str, value: str) -> None:
        if ref.version is None and ref.alias is None:
            self.client.set_model_tag(ref.name, key, value)
        else:
            self.client.set_version_tag(ref.name, _selector(ref), key, value)

    def delete_tag(self, ref: ModelRef, key: str) -> None:
        if ref.version is None and ref.alias is None:
            self.client.delete_model_tag(ref.name, key)
        else:
            self.client.delete_version_tag(ref.name, _selector(ref), key)

    def set_lock(self, ref: ModelRef, lock: EnvironmentLock) -> VersionBody:
        return self.client.set_lock(ref.name, _selector(ref), LockBody.of(lock))

    def delete(self, ref: ModelRef) -> None:
        if ref.version is None and ref.alias is None:
            self.client.delete_model(ref.name)
        else:
            self.client.delete_version(ref.name, self.get_version(ref).version)
