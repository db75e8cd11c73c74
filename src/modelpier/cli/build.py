"""``pier build image``: an OCI image of a model version (or of modelpier itself), without Docker.

Composition only: the registry gives the version and its files, ``images.builder`` pulls the
base, writes the layers and pushes them; the pushed image's digest is recorded on the version.
See docs/images.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from modelpier.cli.context import get_context
from modelpier.cli.output import OutputFormat, emit
from modelpier.errors import InvalidInput
from modelpier.images.build import BuiltImage
from modelpier.images.builder import ImageBuilder
from modelpier.images.cache import ImageCache
from modelpier.images.distribution.auth import find_credentials, parse_credentials
from modelpier.images.distribution.reference import ImageRef
from modelpier.registry.factory import build_registry

DEFAULT_BASE = "python:3.11-slim"
app = typer.Typer(help="Build OCI images from registered models (no Docker needed).", no_args_is_help=True)


@app.command("image")
def image(
    ctx: typer.Context,
    ref: str = typer.Argument(None, help="Model version to build: name, name:3 or name:alias (local store). "
                                         "Leave out with --platform."),
    push: str = typer.Option(None, "--push", metavar="REGISTRY/REPO[:TAG]",
                             help="Push the image there through the OCI distribution API, e.g. "
                                  "ghcr.io/acme/iris:3 or 127.0.0.1:5000/iris."),
    oci_layout: Path = typer.Option(None, "--oci-layout", metavar="DIR",
                                    help="Also (or instead) write the image into an OCI image layout folder "
                                         "(skopeo, umoci, podman read it)."),
    base: str = typer.Option(DEFAULT_BASE, "--base", metavar="IMAGE",
                             help="Base image with Python (3.11 as the models' wheels need it), pulled from any "
                                  "OCI registry; Docker Hub when the name has no registry."),
    insecure: bool = typer.Option(False, "--insecure", help="Speak plain HTTP to the base's and the push "
                                                            "registry (a registry on loopback)."),
    platform: bool = typer.Option(False, "--platform", help="Build the platform image instead: modelpier and its "
                                                            "dependencies, entrypoint `pier` (what Kubernetes "
                                                            "runs by default)."),
    extra: list[str] = typer.Option([], "--extra", metavar="EXTRA",
                                    help="With --platform: modelpier extras to install too (sklearn, xgboost, "
                                         "s3...); repeatable."),
    creds: str = typer.Option(None, "--creds", envvar="PIER_IMAGE_CREDS", metavar="USER:PASSWORD",
                              help="Credentials for the push registry (default: what `docker login`, "
                                   "`skopeo login` or `podman login` stored)."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--output", "-o", help="table, json or yaml."),
) -> None:
    """Build an OCI image: the base, then layers for the locked environment, modelpier, and the model
    (the last, so a new version on the same environment changes one small layer). Same inputs, same
    digest. Prints the digest and records the pushed image on the version."""
    c = get_context(ctx)
    if not push and oci_layout is None:
        raise InvalidInput("say where the image goes: --push REGISTRY/REPO[:TAG] and/or --oci-layout DIR")
    if platform == (ref is not None):
        raise InvalidInput("give a model REF to build, or --platform for the platform image (not both)")
    target = ImageRef.parse(push) if push else None
    base_ref = ImageRef.parse(base)
    given = parse_credentials(creds) if creds else None

    def credentials(host: str) -> Any:
        if given is not None and target is not None and host == target.api_host:
            return given
        return find_credentials(host)

    hosts = {base_ref.api_host, *([target.api_host] if target else [])} if insecure else set()
    say = (lambda line: c.err.print(line, highlight=False)) if output is OutputFormat.table else (lambda _: None)
    builder = ImageBuilder(ImageCache(c.settings.home / "images"), insecure=hosts, credentials=credentials, say=say)
    registry = build_registry(c.settings)
    try:
        started = time.monotonic()
        version = None if platform else registry.resolve(ref)  # a typo fails before any download
        base_image = builder.pull_base(base)
        if version is None:
            built = builder.build_platform(base_image, extra)
            layout_tag = target.tag if target and target.tag else "platform"
        else:
            built = builder.build_model(base_image, version, registry.materialize(version))
            layout_tag = target.tag if target and target.tag else f"{version.model}-{version.version}"
        built_s = time.monotonic() - started
        if oci_layout is not None:
            builder.write_layout(built, oci_layout, layout_tag)
        pushed = builder.push(built, target) if target else None
        if pushed is not None and version is not None:
            registry.set_image(version.model, version.version, str(pushed))
        total_s = time.monotonic() - started
    finally:
        builder.close()
        registry.close()
    result = _result(built, pushed, oci_layout, layout_tag, version.ref if version else None, built_s, total_s)
    emit(c.out, result, output, lambda: _summary(result))


def _result(built: BuiltImage, pushed: ImageRef | None, layout: Path | None, tag: str, model: str | None,
            build_s: float, total_s: float) -> dict[str, Any]:
    return {"digest": built.digest, "image": str(pushed) if pushed else None,
            "ociLayout": f"{layout}:{tag}" if layout else None, "model": model,
            "layers": [{"digest": d.digest, "size": d.size} for d in built.plan.layers],
            "compressedBytes": sum(d.size for d in built.plan.layers),
            "buildSeconds": round(build_s, 2), "totalSeconds": round(total_s, 2)}


def _summary(result: dict[str, Any]) -> str:
    lines = [f"digest {result['digest']}"]
    if result["image"]:
        lines.append(f"pushed [bold]{result['image']}[/]" + (f" (recorded on {result['model']})"
                                                              if result["model"] else ""))
    if result["ociLayout"]:
        lines.append(f"wrote OCI layout {result['ociLayout']}")
    lines.append(f"{len(result['layers'])} layers, {result['compressedBytes'] / 1e6:.1f} MB compressed, "
                 f"{result['totalSeconds']:.1f} s")
    return "\n".join(lines)
