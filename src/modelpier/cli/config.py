"""``pier config show``: the settings in force, from every source, with secrets masked."""

from __future__ import annotations

import re
from typing import Any

import typer

from modelpier.cli.context import get_context
from modelpier.cli.output import OutputFormat, emit, simple_table
from modelpier.settings import config_file_path

app = typer.Typer(help="Inspect modelpier's settings (PIER_* variables and the config file).",
                  no_args_is_help=True)


def _mask(url: str | None) -> str | None:
    # user:password@host → user:***@host, so `pier config show` is safe to paste into an issue.
    # The user may be empty: Redis URLs often carry only a password (redis://:password@host).
    return re.sub(r"(//[^:/@]*:)[^@]+@", r"\1***@", url) if url else url


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


@app.command("show")
def show(ctx: typer.Context,
         output: OutputFormat = typer.Option(OutputFormat.table, "--output", "-o", help="table, json or yaml.")
         ) -> None:
    """Print every setting with its effective value (defaults resolved)."""
    c = get_context(ctx)
    s = c.settings
    data = s.model_dump(mode="json")
    data["database_url"] = _mask(s.resolved_database_url)
    redis_url = s.gateway.redis_url
    data["gateway"]["redis_url"] = _mask(redis_url.get_secret_value()) if redis_url else None
    data["blob_url"] = s.resolved_blob_url
    data["registry"]["cache_dir"] = str(s.resolved_cache_dir)
    path = config_file_path()
    data["config_file"] = str(path) if path else None
    emit(c.out, data, output, lambda: simple_table(
        None, ["SETTING", "VALUE", "ENV VAR"],
        [[k, v, "PIER_" + k.upper().replace(".", "__")] for k, v in _flatten(data) if k != "config_file"]
        + [["config_file", data["config_file"] or "(none)", "PIER_CONFIG"]]))
