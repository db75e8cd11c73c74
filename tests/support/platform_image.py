"""The platform image (control plane, gateway and model servers in one), built without Docker.

A Debian bookworm base with its python3 (``debootstrap --variant=minbase``, made once a day), turned
into a one-layer OCI image by ``images.rootfs`` and pushed to the target registry; then the
project's own builder (``ImageBuilder.build_platform``, what ``pier build image --platform`` runs)
adds modelpier's dependencies with ``PLATFORM_EXTRAS`` and modelpier itself, and pushes under a tag
named for the image's digest. Everything is cached under ``$PIER_TEST_CACHE`` (default
``/var/tmp/modelpier-tests``) by content: the root file system by day, its layout by the root file
system, the layers by what decides them (``images/cache.py``), so a rerun with the same source
writes nothing and only pushes what the registry lacks.

As a script (what docs/kubernetes.md runs)::

    python -m tests.support.platform_image --push 127.0.0.1:5000 [--repository modelpier]
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelpier.errors import NotFound
from modelpier.images.builder import ImageBuilder, push_layout
from modelpier.images.cache import ImageCache
from modelpier.images.distribution.client import DistributionClient
from modelpier.images.distribution.reference import ImageRef
from modelpier.images.oci.layout import read_layout
from modelpier.images.rootfs import layout_from_rootfs

# What the platform's pods need: the example's scikit-learn models, PostgreSQL, S3 blobs, Redis
# for the gateway, and the Kubernetes client of the control plane's backend.
PLATFORM_EXTRAS = ("sklearn", "postgres", "s3", "redis", "kubernetes")
BASE_TAG = "bookworm"


class ImageUnavailable(RuntimeError):
    """The image cannot be made on this machine (no debootstrap, no mirror): tests skip with it."""


def cache_root() -> Path:
    return Path(os.environ.get("PIER_TEST_CACHE", "/var/tmp/modelpier-tests"))  # shared on purpose


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builders of one cache across processes (xdist workers, other sessions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debian_rootfs(cache: Path | None = None) -> Path:
    """A Debian bookworm root file system with python3, made once a day (needs root and a mirror)."""
    cache = cache or cache_root()
    target = cache / f"bookworm-python3-{datetime.date.today():%Y%m%d}"
    with _locked(cache / "rootfs.lock"):
        if (target / "usr" / "bin" / "python3").exists():
            return target
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not Path(debootstrap).exists():
            raise ImageUnavailable("debootstrap is not installed (scripts/install-system-deps.sh installs it)")
        if os.geteuid() != 0:
            raise ImageUnavailable("debootstrap needs root to make the Debian base")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        done = subprocess.run([debootstrap, "--variant=minbase", "--include=python3", "bookworm", str(partial)],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise ImageUnavailable(f"debootstrap could not make a Debian base (no mirror?): {done.stderr[-500:]}")
        partial.rename(target)
        return target


def base_layout(rootfs: Path, cache: Path | None = None) -> Path:
    """``rootfs`` as a one-layer OCI layout tagged ``bookworm``, written once per root file system."""
    cache = cache or cache_root()
    layout = cache / "layouts" / rootfs.name
    with _locked(cache / "layouts.lock"):
        try:
            read_layout(layout, BASE_TAG)
        except NotFound:
            partial = layout.with_name(layout.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            layout_from_rootfs(rootfs, partial, BASE_TAG)
            shutil.rmtree(layout, ignore_errors=True)
            partial.rename(layout)
    return layout


@dataclass(frozen=True)
class PlatformImage:
    ref: str  # HOST/REPO:TAG@sha256:... as pushed
    digest: str
    compressed_bytes: int
    seconds: dict[str, float]  # base, build, push: where the time went

    @property
    def by_digest(self) -> str:
        """``HOST/REPO@sha256:...``: what pods run (a tag can move, a digest cannot)."""
        name = self.ref.split("@", 1)[0]
        repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        return f"{repository}@{self.digest}"


def build_platform_image(registry: str, *, repository: str = "modelpier", extras: Sequence[str] = PLATFORM_EXTRAS,
                         cache: Path | None = None, say: Callable[[str], None] = lambda _: None) -> PlatformImage:
    """Build the platform image and push it to ``registry`` (``HOST:PORT``, plain HTTP) as
    ``REPOSITORY:<first 12 hex of its digest>``."""
    cache = cache or cache_root()
    seconds: dict[str, float] = {}
    started = time.monotonic()
    layout = base_layout(debian_rootfs(cache), cache)
    base_ref = ImageRef.parse(f"{registry}/base/debian:{BASE_TAG}")
    with DistributionClient(registry, insecure=True) as client:
        push_layout(client, layout, BASE_TAG, base_ref, say=say)
    seconds["base"] = time.monotonic() - started
    with _locked(cache / "images.lock"):
        builder = ImageBuilder(ImageCache(cache / "images"), insecure={registry}, say=say)
        try:
            started = time.monotonic()
            built = builder.build_platform(builder.pull_base(str(base_ref)), list(extras))
            seconds["build"] = time.monotonic() - started
            started = time.monotonic()
            tag = built.digest.removeprefix("sha256:")[:12]
            pushed = builder.push(built, ImageRef.parse(f"{registry}/{repository}:{tag}"))
            seconds["push"] = time.monotonic() - started
        finally:
            builder.close()
    return PlatformImage(ref=str(pushed), digest=built.digest,
                         compressed_bytes=sum(d.size for d in built.plan.layers),
                         seconds={k: round(v, 2) for k, v in seconds.items()})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--push", required=True, metavar="HOST:PORT", help="registry (plain HTTP) to push to")
    parser.add_argument("--repository", default="modelpier")
    parser.add_argument("--extra", action="append", help=f"modelpier extras (default: {', '.join(PLATFORM_EXTRAS)})")
    args = parser.parse_args(argv)
    image = build_platform_image(args.push, repository=args.repository, extras=args.extra or PLATFORM_EXTRAS,
                                 say=lambda line: print(line, file=sys.stderr))
    print(image.by_digest)
    print(f"{image.compressed_bytes / 1e6:.0f} MB compressed; seconds: {image.seconds}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
