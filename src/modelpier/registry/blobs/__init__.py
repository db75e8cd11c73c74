"""Blob stores: content-addressed artifact bytes in a local folder or an S3-compatible bucket.

``open_blob_store(url)`` picks the implementation; both satisfy ``base.BlobStore`` and are checked
by one contract suite (``tests/integration/registry/test_blob_store_contract.py``).
"""

from modelpier.registry.blobs.base import DEFAULT_CHUNK, BlobStore
from modelpier.registry.blobs.factory import open_blob_store
from modelpier.registry.blobs.local import LocalBlobStore

__all__ = ["DEFAULT_CHUNK", "BlobStore", "LocalBlobStore", "open_blob_store"]
