"""Real parts of the image path: Debian's ``docker-registry`` (CNCF distribution) on loopback, a
Debian base image made with ``debootstrap`` once a day and pushed there, ``skopeo`` and ``umoci``.

Tests cannot reach Docker Hub, so the base is ``debootstrap --variant=minbase --include=python3
bookworm`` (~35 s on an idle machine), cached under ``$PIER_TEST_CACHE`` (default
``/var/tmp/modelpier-tests``) in a folder named for the day, turned into an OCI layout by our own
layer writer (``images.rootfs``) and pushed by our own client. Missing tools are installed by
``scripts/install-system-deps.sh`` when running as root; otherwise the tests skip, saying what is
missing.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelpier.images.builder import push_layout
from modelpier.images.distribution.client import DistributionClient
from modelpier.images.distribution.reference import ImageRef
from modelpier.images.rootfs import layout_from_rootfs
from tests.support.procs import free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ("docker-registry", "skopeo", "umoci", "debootstrap")


def _missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]


@pytest.fixture(scope="session")
def image_tools() -> None:
    """Skips (naming the tools) unless docker-registry, skopeo, umoci and debootstrap are there or
    can be installed (as root)."""
    missing = _missing()
    if missing and os.geteuid() == 0:
        subprocess.run(["sh", str(ROOT / "scripts" / "install-system-deps.sh")], capture_output=True,
                       timeout=900, check=False)
        missing = _missing()
    if missing:
        pytest.skip(f"the image tests need {', '.join(missing)} (Debian packages); run "
                    f"scripts/install-system-deps.sh as root to install them")
    if os.geteuid() != 0:
        pytest.skip("the image tests need root: debootstrap makes the base, chroot runs the unpacked image")


@pytest.fixture(scope="session")
def debian_rootfs(image_tools: None) -> Path:
    """A Debian bookworm root file system with python3, made once a day."""
    cache = Path(os.environ.get("PIER_TEST_CACHE", "/var/tmp/modelpier-tests"))
    target = cache / f"bookworm-python3-{datetime.date.today():%Y%m%d}"
    if not (target / "usr" / "bin" / "python3").exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        done = subprocess.run([debootstrap, "--variant=minbase", "--include=python3", "bookworm", str(partial)],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.skip(f"debootstrap could not make a Debian base (no mirror reachable?): {done.stderr[-500:]}")
        partial.rename(target)
    return target


@dataclass(frozen=True)
class LoopbackRegistry:
    host: str  # 127.0.0.1:PORT
    data: Path

    def client(self) -> DistributionClient:
        return DistributionClient(self.host, insecure=True)


def start_registry(base: Path) -> tuple[subprocess.Popen[bytes], LoopbackRegistry]:
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    config = base / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {base / 'data'}}}\n"
                      f"  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n  relativeurls: true\n"
                      f"  secret: test-secret\nlog:\n  level: warn\n")
    with (base / "registry.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v2/"
    wait_until(lambda: proc.poll() is not None or http_ok(url)(), timeout=30, what=f"docker-registry on {url}")
    if proc.poll() is not None:
        raise AssertionError(f"docker-registry exited early:\n{(base / 'registry.log').read_text()}")
    return proc, LoopbackRegistry(host=f"127.0.0.1:{port}", data=base / "data")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def oci_registry(image_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackRegistry]:
    proc, registry = start_registry(tmp_path_factory.mktemp("oci-registry"))
    try:
        yield registry
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def debian_base(debian_rootfs: Path, oci_registry: LoopbackRegistry, tmp_path_factory: pytest.TempPathFactory
                ) -> str:
    """The Debian base pushed to the loopback registry; its reference (``HOST/base/debian:bookworm``)."""
    layout = tmp_path_factory.mktemp("base-layout")
    layout_from_rootfs(debian_rootfs, layout, "bookworm")
    target = ImageRef.parse(f"{oci_registry.host}/base/debian:bookworm")
    with oci_registry.client() as client:
        push_layout(client, layout, "bookworm", target)
    return str(target)
