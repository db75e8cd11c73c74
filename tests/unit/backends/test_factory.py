"""``build_backend``: the backend ``platform.backend`` names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelpier.backends import factory
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.errors import InvalidSpec
from modelpier.settings import Settings


def settings(home: Path, backend: str) -> Settings:
    return Settings(home=home, platform={"backend": backend})  # type: ignore[arg-type]


def test_local_is_the_default_and_builds_the_local_backend(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).platform.backend == "local"
    backend = factory.build_backend(settings(tmp_path, "local"))
    assert isinstance(backend, LocalBackend)
    asyncio.run(backend.close())


def test_none_is_no_backend(tmp_path: Path) -> None:
    assert factory.build_backend(settings(tmp_path, "none")) is None


def test_a_kubernetes_backend_that_cannot_load_is_a_clear_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "KUBERNETES_MODULE", "modelpier.backends.kubernetes.not_there")
    with pytest.raises(InvalidSpec, match=r"platform\.backend is kubernetes") as caught:
        factory.build_backend(settings(tmp_path, "kubernetes"))
    assert caught.value.details == {"setting": "platform.backend"}


def test_an_unknown_backend_is_refused_by_the_settings(tmp_path: Path) -> None:
    from modelpier.settings import load_settings

    with pytest.raises(InvalidSpec, match=r"platform\.backend"):
        load_settings(home=tmp_path, platform={"backend": "docker"})
