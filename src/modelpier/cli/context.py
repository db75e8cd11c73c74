"""What every command receives: settings loaded once in ``main()``, and the consoles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import typer
from rich.console import Console

from modelpier.cli.access import LocalAccess, RegistryAccess, RemoteAccess
from modelpier.registry.factory import build_registry
from modelpier.registry.remote import RegistryClient
from modelpier.settings import Settings, load_settings


@dataclass
class CliContext:
    settings: Settings
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def token(self) -> str | None:
        """The API token every remote call sends (PIER_TOKEN, or the one `pier login` stored)."""
        return self.settings.token.get_secret_value() if self.settings.token else None

    @contextmanager
    def registry_access(self, remote: str | None) -> Iterator[RegistryAccess]:
        """The local store, or the remote control plane when ``remote`` is given."""
        if remote:
            with RegistryClient(remote, token=self.token, project=self.settings.project) as client:
                yield RemoteAccess(client)
            return
        registry = build_registry(self.settings)
        try:
            yield LocalAccess(registry, str(self.settings.home))
        finally:
            registry.close()


def get_context(ctx: typer.Context) -> CliContext:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = CliContext(settings=load_settings())
    assert isinstance(root.obj, CliContext)
    return root.obj
