"""Content digests: how blobs are addressed and versions identified. Pure functions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from modelpier.errors import InvalidInput

if TYPE_CHECKING:
    from modelpier.registry.domain import FileEntry

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def format_digest(hexdigest: str) -> str:
    return f"sha256:{hexdigest}"


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>``, else raise ``InvalidInput``."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidInput(f"digest {digest!r} is not of the form sha256:<64 lowercase hex digits>")
    return digest


def hex_of(digest: str) -> str:
    return validate_digest(digest).removeprefix("sha256:")


def digest_bytes(data: bytes) -> str:
    return format_digest(hashlib.sha256(data).hexdigest())


def manifest_digest(files: Iterable[FileEntry]) -> str:
    """Identity of a version's artifact: the same files at the same paths give the same digest."""
    h = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f.path):
        h.update(f"{entry.path}\0{entry.digest}\0{entry.size}\n".encode())
    return format_digest(h.hexdigest())
