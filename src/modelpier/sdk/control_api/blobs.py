"""The blob store's endpoints: content-addressed blobs (shared by every project) and resumable uploads.

An upload is begun (an id), appended to in streamed ``PATCH`` requests at an ``Upload-Offset``,
asked for its offset after a cut-off, and finished with the digest the server verifies. A blob's
bytes are read with ``ControlClient.download(blob_path(digest), ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from modelpier.registry.wire import BlobBody, UploadBody
from modelpier.sdk.control_api.call import Call, get, one, seg


def blob_path(digest: str) -> str:
    return f"/blobs/{seg(digest)}"


def blob_exists(digest: str) -> Call[bool]:
    return Call("HEAD", blob_path(digest), lambda response: response.status_code != 404, accept=frozenset({404}))


def begin_upload() -> Call[UploadBody]:
    return Call("POST", "/blobs/uploads", one(UploadBody))


def _offset(response: httpx.Response) -> int:
    return UploadBody.model_validate_json(response.content).offset


def upload_offset(upload_id: str) -> Call[int]:
    return get(f"/blobs/uploads/{seg(upload_id)}", _offset)


def append(upload_id: str, offset: int, chunks: Iterable[bytes]) -> Call[int]:
    """Send ``chunks`` as one streamed body starting at ``offset``; answers the new offset (never retried)."""
    return Call("PATCH", f"/blobs/uploads/{seg(upload_id)}",
                _offset, content=chunks,
                headers={"Upload-Offset": str(offset), "Content-Type": "application/octet-stream"})


def finish_upload(upload_id: str, digest: str) -> Call[BlobBody]:
    return Call("PUT", f"/blobs/uploads/{seg(upload_id)}", one(BlobBody), params={"digest": digest})
