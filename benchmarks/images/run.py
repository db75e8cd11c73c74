"""Image size and build time of `pier build image` for the iris model (docs/benchmarks.md#images).

Starts Debian's docker-registry on loopback, makes a Debian bookworm base with python3 through
debootstrap (cached per day under /var/tmp/modelpier-tests, as the tests do) and pushes it there,
saves a scikit-learn iris model into a fresh PIER_HOME, then times, with the real `pier` CLI:

- cold: the first build and push (pip installs the environment; nothing cached);
- warm: a rebuild of the same version (every layer cached; the registry has every blob);
- new version: version 2 of the model on the same environment (one new layer written and pushed).

Sizes: compressed (what a registry stores and a node pulls) and uncompressed (the unpacked root
file system, as `docker images` shows sizes), for the whole image and for each layer.

    .venv/bin/python benchmarks/images/run.py [--base-rootfs DIR]

Needs root (debootstrap) unless --base-rootfs names a root file system with python3.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from modelpier.images.builder import push_layout
from modelpier.images.distribution.client import DistributionClient
from modelpier.images.distribution.reference import ImageRef
from modelpier.images.oci.layout import blob_path
from modelpier.images.rootfs import layout_from_rootfs
from modelpier.settings import load_settings

PIER = Path(sys.executable).parent / "pier"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rootfs(given: str | None) -> Path:
    if given:
        return Path(given)
    cache = Path(os.environ.get("PIER_TEST_CACHE", "/var/tmp/modelpier-tests"))  # noqa: S108  # shared with the tests, by design
    target = cache / f"bookworm-python3-{datetime.date.today():%Y%m%d}"
    if not (target / "usr" / "bin" / "python3").exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(partial)],
                       check=True, capture_output=True)
        partial.rename(target)
    return target


def start_registry(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = work / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {work / 'data'}}}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n  secret: bench\nlog:\n  level: warn\n")
    with (work / "registry.log").open("wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return proc, f"127.0.0.1:{port}"
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("docker-registry did not start")


def save_iris(home: Path, c: float) -> str:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(C=c, max_iter=500).fit(x, y)
    return modelpier.save_model("iris", model, input_example=x[:2], settings=load_settings(home=home)).ref


def build(home: Path, *args: str) -> tuple[float, dict[str, object]]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PIER_")}, "PIER_HOME": str(home)}
    started = time.monotonic()
    done = subprocess.run([str(PIER), "build", "image", *args, "--insecure", "-o", "json"], env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"pier build image failed:\n{done.stderr}")
    return elapsed, json.loads(done.stdout)


def uncompressed(path: Path) -> int:
    total = 0
    with gzip.open(path) as fh:
        while chunk := fh.read(1 << 20):
            total += len(chunk)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-rootfs", help="a root file system with python3 (default: debootstrap bookworm)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pier-image-bench-"))
    proc, host = start_registry(work)
    try:
        layout = work / "base"
        layout_from_rootfs(rootfs(args.base_rootfs), layout, "bookworm")
        base = f"{host}/base/debian:bookworm"
        with DistributionClient(host, insecure=True) as client:
            push_layout(client, layout, "bookworm", ImageRef.parse(base))
        home = work / "home"
        save_iris(home, 1.0)
        out = work / "oci"
        cold_s, cold = build(home, "iris:1", "--base", base, "--push", f"{host}/models/iris:1",
                             "--oci-layout", str(out))
        warm_s, _ = build(home, "iris:1", "--base", base, "--push", f"{host}/models/iris:1")
        save_iris(home, 0.5)
        new_s, new = build(home, "iris:2", "--base", base, "--push", f"{host}/models/iris:2")
        layers = cold["layers"]
        assert isinstance(layers, list)
        names = ["base", "environment", "modelpier", "model"]
        print(f"cold build + push:            {cold_s:6.1f} s")
        print(f"warm rebuild + push (same):   {warm_s:6.1f} s")
        print(f"new version, cached env:      {new_s:6.1f} s")
        total_c = total_u = 0
        for name, layer in zip(names, layers, strict=True):
            size_u = uncompressed(blob_path(out, layer["digest"]))
            total_c += layer["size"]
            total_u += size_u
            print(f"layer {name:12s} {layer['size'] / 1e6:8.1f} MB compressed {size_u / 1e6:8.1f} MB uncompressed")
        print(f"image total        {total_c / 1e6:8.1f} MB compressed {total_u / 1e6:8.1f} MB uncompressed")
        print(f"new version pushed {new['layers'][-1]['size'] / 1e3:.1f} kB (the model layer) + config + manifest")  # type: ignore[index]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
