"""What every command receives: settings loaded once in ``main()``, and the consoles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import typer
from rich.console import Console

from modelpier.cli.access import LocalAccess, RegistryAccess, RemoteAccess
from modelpier.registry.factory import build_registry
from modelpier.sdk.control_api import ControlClient
from modelpier.sdk.control_api.transport import DEFAULT_TIMEOUT
from modelpier.settings import Settings, load_settings

# Said when the control plane cannot be reached at all: the user starts it or points elsewhere.
UNREACHABLE_HINT = "is `pier server` (or `pier up`) running? Point elsewhere with --remote or PIER_REMOTE"


@dataclass
class CliContext:
    settings: Settings
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def token(self) -> str | None:
        """The API token every remote call sends (PIER_TOKEN, or the one `pier login` stored)."""
        return self.settings.token.get_secret_value() if self.settings.token else None

    def control(self, url: str, *, token: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> ControlClient:
        """A client of the control plane at ``url`` with this user's token (or ``token``)."""
        return ControlClient(url, token=token or self.token, timeout=timeout, hint=UNREACHABLE_HINT)

    @contextmanager
    def registry_access(self, remote: str | None) -> Iterator[RegistryAccess]:
        """The local store, or the remote control plane when ``remote`` is given."""
        if remote:
            with self.control(remote) as client:
                yield RemoteAccess(client, self.settings.project)
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
