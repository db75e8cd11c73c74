"""``pier server`` (the control-plane API) and ``pier up`` (the platform with the example model)."""

from __future__ import annotations

import logging

import typer

from modelpier.cli.context import get_context


def _run_control_plane(ctx: typer.Context, host: str | None, port: int | None, *, with_example: bool) -> None:
    import uvicorn

    from modelpier.control.app import build_control_plane
    from modelpier.registry.factory import build_registry

    c = get_context(ctx)
    settings = c.settings
    host = host or settings.control.host
    port = settings.control.port if port is None else port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = build_registry(settings)
    app = build_control_plane(settings, registry=registry)
    config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level, access_log=False)
    server = uvicorn.Server(config)
    url = f"http://{host}:{port}"
    if with_example:
        from modelpier.examples.iris import ensure_example_model

        example = ensure_example_model(registry, settings)
        c.out.print(f"example model registered: [bold]{example.model}:{example.version}[/] "
                    f"(alias production)")
    c.out.print(f"modelpier control plane on [bold]{url}[/]")
    c.out.print(f"  API docs:  {url}/docs")
    c.out.print(f"  models:    curl {url}/api/v1/models")
    c.out.print(f"  CLI:       pier models list --remote {url}")
    server.run()


def server(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Interface to bind (default: control.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (default: control.port, 8600)."),
) -> None:
    """Run the control-plane API server (registry under /api/v1, OpenAPI at /docs)."""
    _run_control_plane(ctx, host, port, with_example=False)


def up(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Interface to bind (default: control.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (default: control.port, 8600)."),
) -> None:
    """Start the platform on embedded defaults with the example iris model registered."""
    _run_control_plane(ctx, host, port, with_example=True)
