"""``pier config show``: the settings in force, from every source, with secrets masked.

Every leaf of the settings tree (``settings.setting_fields``) is one row: its dotted name, its value
with derived defaults resolved (the database and blob URLs, the cache and environment folders), and
the ``PIER_*`` variable that sets it. Secret settings print as ``**********`` and passwords inside
URLs as ``***``, so the output is safe to paste into an issue.
"""

from __future__ import annotations

import re
from typing import Any

import typer

from modelpier.cli.context import get_context
from modelpier.cli.output import OutputFormat, emit, simple_table
from modelpier.settings import Settings, config_file_path, setting_fields

app = typer.Typer(help="Inspect modelpier's settings (PIER_* variables and the config file).",
                  no_args_is_help=True)


def _mask(url: str | None) -> str | None:
    # user:password@host → user:***@host, so `pier config show` is safe to paste into an issue.
    # The user may be empty: Redis URLs often carry only a password (redis://:password@host).
    return re.sub(r"(//[^:/@]*:)[^@]+@", r"\1***@", url) if url else url


def _masked(value: Any) -> Any:
    """Any string value that is a URL with a password (database, Redis, a remote) loses the password."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return _mask(value) if isinstance(value, str) else value


def effective(settings: Settings) -> dict[str, Any]:
    """The settings as JSON data, derived defaults resolved and secrets masked (SecretStr dumps as stars)."""
    data = settings.model_dump(mode="json")
    data["database_url"] = settings.resolved_database_url
    data["blob_url"] = settings.resolved_blob_url
    data["registry"]["cache_dir"] = str(settings.resolved_cache_dir)
    data["registry"]["environments_dir"] = str(settings.resolved_environments_dir)
    redis_url = settings.gateway.redis_url
    data["gateway"]["redis_url"] = redis_url.get_secret_value() if redis_url else None
    masked: dict[str, Any] = _masked(data)
    return masked


def config_rows(settings: Settings) -> list[tuple[str, Any, str]]:
    """(setting, value, variable) for every leaf setting, in declaration order."""
    data = effective(settings)
    rows: list[tuple[str, Any, str]] = []
    for field in setting_fields():
        value: Any = data
        for part in field.path.split("."):
            value = value[part]
        rows.append((field.path, value, field.env_var))
    return rows


@app.command("show")
def show(ctx: typer.Context,
         output: OutputFormat = typer.Option(OutputFormat.table, "--output", "-o", help="table, json or yaml.")
         ) -> None:
    """Print every setting with its effective value (defaults resolved) and its PIER_* variable."""
    c = get_context(ctx)
    data = effective(c.settings)
    path = config_file_path()
    data["config_file"] = str(path) if path else None
    emit(c.out, data, output, lambda: simple_table(
        None, ["SETTING", "VALUE", "ENV VAR"],
        [*config_rows(c.settings), ("config_file", data["config_file"] or "(none)", "PIER_CONFIG")]))
