"""What ``pier up`` and ``pier server`` run around the one composition root (``control/platform.py``).

Both build the same platform and serve it (``serve_platform``); they differ in the backend and the
daemons. ``pier up``: the local backend, the gateway as a detached child (``gateway/process.py``) that
polls the routing table, adopted by the next ``pier up`` and restarted here if it dies, and the iris
example. ``pier server``: the backend ``platform.backend`` names (``backends/factory.py``), no gateway
(run ``pier gateway --control URL`` beside it). A process that supervises local replicas records
itself in ``$PIER_HOME/platform.json``, so ``pier down`` stops it before its replicas. On
SIGINT/SIGTERM the reconciler stops first, then the API server; replicas and the gateway keep
running (``pier down`` stops them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from modelpier.backends.base import Backend
from modelpier.backends.factory import build_backend
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.control.api.app import check_protected
from modelpier.control.deployments.service import DeploymentService
from modelpier.control.platform import build_platform, serve_platform
from modelpier.dashboard import mount_dashboard
from modelpier.errors import Conflict, PierError
from modelpier.gateway.process import (
    PLATFORM_FILE,
    GatewayProcess,
    ProcessRecord,
    load_record,
    own_argv,
    running,
    save_record,
    wait_for_gateway,
    watch_gateway,
)
from modelpier.registry.service import Registry
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec

log = logging.getLogger("modelpier.platform")

EXAMPLE_PROJECT = "default"
EXAMPLE_DEPLOYMENT = "iris"


@dataclass(frozen=True, slots=True)
class PlatformUrls:
    api: str
    gateway: str
    gateway_note: str = ""  # adopted or started, with the pid


def example_spec(replicas: int = 1) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {"predictors": [{"name": "main", "model": "iris:production", "replicas": replicas}]})


def deploy_example(service: DeploymentService, user: str) -> None:
    """Deploy ``iris:production`` as ``default/iris`` unless a deployment of that name exists."""
    service.store.ensure_project(EXAMPLE_PROJECT)
    try:
        service.get(EXAMPLE_PROJECT, EXAMPLE_DEPLOYMENT)
        return
    except PierError:
        pass
    service.apply(EXAMPLE_PROJECT, example_spec(), user, name=EXAMPLE_DEPLOYMENT)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _check_alone(home: Path) -> None:
    """``Conflict`` when another live control plane runs this home's local replicas: two reconcilers over
    one set of local replicas would stop each other's."""
    other = load_record(home / PLATFORM_FILE)
    if other is not None and other.pid != os.getpid() and running(other.pid, other.argv):
        raise Conflict(f"a control plane already runs the local replicas of {home} (pid {other.pid}, API on "
                       f"{other.url}); `pier down` stops it", details={"pid": other.pid})


@contextlib.contextmanager
def _recorded(home: Path, url: str, backend: Backend | None) -> Iterator[None]:
    """Record this process in ``platform.json`` while it supervises local replicas (``pier down`` reads it)."""
    path = home / PLATFORM_FILE
    local = isinstance(backend, LocalBackend)
    if local:
        save_record(path, ProcessRecord(os.getpid(), own_argv(), url, time.time()))
    try:
        yield
    finally:
        mine = load_record(path) if local else None
        if mine is not None and mine.pid == os.getpid():
            path.unlink(missing_ok=True)


async def run_platform(settings: Settings, registry: Registry, *, host: str, port: int,
                       on_ready: Callable[[PlatformUrls], None], with_example: bool = True,
                       announce_admin_token: Callable[[str], None] = lambda _: None) -> None:
    """``pier up``: run until stopped. On a first start the admin token minted is passed to
    ``announce_admin_token`` (``pier up`` prints it and stores it for the CLI); the gateway polls the
    routing table with it."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    api_url = f"http://{host}:{port}"
    gateway = GatewayProcess(settings, api_url)
    minted: list[str] = []

    def announce(token: str) -> None:
        minted.append(token)
        announce_admin_token(token)

    platform = build_platform(settings, LocalBackend(settings), registry=registry, endpoint_base=gateway.url,
                              announce_admin_token=announce)
    mount_dashboard(platform.app, settings, gateway_url=gateway.url)
    check_protected(platform.app)
    gateway.token = minted[0] if minted else _secret(settings.admin_token) or _secret(settings.token)
    watching: list[asyncio.Task[None]] = []

    async def started() -> None:
        note = await asyncio.to_thread(gateway.ensure)
        await wait_for_gateway(gateway)
        watching.append(asyncio.create_task(watch_gateway(gateway), name="gateway watch"))
        if with_example:
            await asyncio.to_thread(deploy_example, platform.deployments, settings.user)
        on_ready(PlatformUrls(api=api_url, gateway=gateway.url, gateway_note=note))

    try:
        with _recorded(settings.home, api_url, platform.backend):
            await serve_platform(platform, host=host, port=port, log_level=settings.log_level, started=started)
    finally:
        for task in watching:
            task.cancel()


async def run_server(settings: Settings, registry: Registry, *, host: str, port: int,
                     on_ready: Callable[[str], None]) -> None:
    """``pier server``: the same platform over the backend ``platform.backend`` names, without a gateway
    process; run until stopped."""
    if settings.platform.backend == "local":
        _check_alone(settings.home)  # before the backend adopts the replicas another process runs
    backend = build_backend(settings)
    url = f"http://{host}:{port}"
    platform = build_platform(settings, backend, registry=registry)
    mount_dashboard(platform.app, settings, gateway_url=None)
    check_protected(platform.app)
    with _recorded(settings.home, url, backend):
        await serve_platform(platform, host=host, port=port, log_level=settings.log_level,
                             started=lambda: asyncio.to_thread(on_ready, url))
