"""API token secrets: generation, hashing and comparison. Pure apart from the injected randomness.

A token is ``pier_`` + 32 random URL-safe bytes. It is shown once; the database keeps only
HMAC-SHA256(server secret, token), so a leaked database does not leak usable tokens, and a
display prefix (the first characters after ``pier_``) so users can tell their tokens apart.
HMAC with a server secret rather than a slow KDF: tokens carry 256 bits of entropy, so brute force
is hopeless anyway, and every API call verifies one, so the hash must be cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

TOKEN_PREFIX = "pier_"  # noqa: S105 - the public prefix, not a secret
KEY_PREFIX = "pierk_"  # invocation keys: invoke-only, one deployment
DISPLAY_CHARS = 8
_SECRET_BYTES = 32
MAX_TOKEN_LEN = 256


def new_token(prefix: str = TOKEN_PREFIX, randbytes: Callable[[int], str] = secrets.token_urlsafe) -> str:
    return prefix + randbytes(_SECRET_BYTES)


def hash_token(secret: bytes, token: str) -> str:
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def display_prefix(token: str) -> str:
    """What listings show: the kind prefix and the first few secret characters (not enough to guess)."""
    kind = KEY_PREFIX if token.startswith(KEY_PREFIX) else TOKEN_PREFIX
    return token[:len(kind) + DISPLAY_CHARS]


def matches(secret: bytes, token: str, stored_hash: str) -> bool:
    """Constant-time check of ``token`` against a stored hash."""
    return hmac.compare_digest(hash_token(secret, token), stored_hash)


def plausible(token: str) -> bool:
    """Cheap shape check before any database work, so junk headers cost nothing."""
    return (token.startswith((TOKEN_PREFIX, KEY_PREFIX)) and len(token) <= MAX_TOKEN_LEN
            and token.isascii() and token.isprintable())
