"""Where the CLI keeps its credentials: ``remote`` and ``token`` in the config file, mode 0600.

The config file is ``PIER_CONFIG`` or ``$PIER_HOME/config.yaml`` (the one ``Settings`` reads), so
every later command picks the token up like any other setting. Written to a temporary file created
0600 and renamed over, so the token is never readable by others, not even for a moment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from modelpier.errors import InvalidInput
from modelpier.settings import default_home, read_config_file


def credentials_path() -> Path:
    explicit = os.environ.get("PIER_CONFIG")
    return Path(explicit).expanduser() if explicit else default_home() / "config.yaml"


def save_credentials(remote: str | None, token: str, path: Path | None = None) -> Path:
    path = path or credentials_path()
    if path.suffix == ".toml":
        raise InvalidInput(f"{path} is TOML; `pier login` writes YAML: point PIER_CONFIG at a .yaml file")
    data: dict[str, Any] = read_config_file(path) if path.is_file() else {}
    if remote:
        data["remote"] = remote
    data["token"] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=True)
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path

