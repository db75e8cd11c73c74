"""Rendering for the CLI: Rich tables for people, ``-o json|yaml`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def _plain(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", by_alias=True)  # wire names, as the API shows them
    if isinstance(obj, list | tuple):
        return [_plain(o) for o in obj]
    return obj


def emit(console: Console, obj: Any, fmt: OutputFormat, table: Callable[[], Table | str]) -> None:
    """Print ``obj`` as JSON/YAML, or the human ``table`` (built lazily) by default."""
    # Machine formats go to stdout raw: Rich would wrap long lines (digests) and break parsers.
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(_plain(obj), indent=2) + "\n")
    elif fmt is OutputFormat.yaml:
        sys.stdout.write(yaml.safe_dump(_plain(obj), sort_keys=False))
    else:
        console.print(table())


def simple_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
