"""``open_blob_store``: the one place a blob URL becomes a ``BlobStore``.

``/path``, ``~/path`` or ``file:///path`` is a local folder; ``s3://bucket/prefix`` is S3 (or an
S3-compatible server at ``s3_endpoint_url``). boto3 is imported only for S3 URLs, so the core
install works without the ``s3`` extra.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelpier.errors import InvalidSpec
from modelpier.registry.blobs.base import BlobStore
from modelpier.registry.blobs.local import LocalBlobStore


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None) -> BlobStore:
    if not isinstance(url, str) or not url.strip():
        raise InvalidSpec("blob URL must not be empty: use a folder path, file:///path or s3://bucket/prefix")
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc:
            raise InvalidSpec(f"blob URL {url!r} names no bucket: use s3://bucket/prefix")
        try:
            from modelpier.registry.blobs.s3 import S3BlobStore  # boto3 is optional
        except ImportError as exc:
            raise InvalidSpec(f"blob URL {url!r} needs boto3: pip install 'modelpier[s3]'") from exc
        return S3BlobStore(parts.netloc, unquote(parts.path), s3_endpoint_url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidSpec(f"blob URL {url!r} names host {parts.netloc!r}; file URLs must be local "
                              "(file:///absolute/path)")
        return LocalBlobStore(Path(unquote(parts.path)))
    if scheme == "":
        return LocalBlobStore(Path(url).expanduser())
    raise InvalidSpec(f"blob URL {url!r} has unsupported scheme {scheme!r}: use a folder path, file:///path "
                      "or s3://bucket/prefix")
