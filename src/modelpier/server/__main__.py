"""``python -m modelpier.server MODEL...``: the model server without the ``pier`` CLI (same options)."""

from __future__ import annotations

import sys

import typer

from modelpier.cli.serve import serve
from modelpier.errors import PierError, exit_code


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    try:
        app()
    except PierError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exit_code(exc))


if __name__ == "__main__":
    main()
