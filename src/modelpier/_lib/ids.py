"""Random identifiers (upload ids, error ids)."""

from __future__ import annotations

import secrets


def new_id(nbytes: int = 12) -> str:
    return secrets.token_hex(nbytes)
