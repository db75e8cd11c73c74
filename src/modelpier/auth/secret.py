"""The server secret that keys token hashes: from settings, else generated once under ``PIER_HOME``.

Generated with ``secrets`` and written with mode 0600 (created exclusively, so two processes
starting together agree on one secret). Changing the secret invalidates every stored token.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

SECRET_FILE = "secret"  # noqa: S105 - the file name, not a secret
_SECRET_BYTES = 32


def load_or_create_secret(home: Path, configured: str | None) -> bytes:
    if configured:
        return configured.encode()
    path = home / SECRET_FILE
    home.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(_SECRET_BYTES))
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty; delete it to generate a new server secret")
    return value.encode()
