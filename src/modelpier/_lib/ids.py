"""Random identifiers (upload ids, error ids, request ids)."""

from __future__ import annotations

import random
import secrets


def new_id(nbytes: int = 12) -> str:
    return secrets.token_hex(nbytes)


_fast = random.Random()  # noqa: S311 -- seeded from the OS once; ids made with it need to be unique, not unguessable


def fast_id(nbytes: int = 8) -> str:
    """A random id for logs and correlation (request ids): unique enough, not a secret.

    ``secrets`` asks the kernel for every id (a system call per request on the gateway's hot path).
    """
    return _fast.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()
