"""Blob routes: content-addressed downloads and chunked, resumable uploads.

The upload flow follows the OCI distribution API's shape, which registry users already know:
``POST /blobs/uploads`` opens a session, ``PATCH`` appends its body at ``Upload-Offset`` (streamed to
disk as it arrives, so one request may carry the whole blob), ``GET`` tells the current offset (so
an interrupted push resumes), ``PUT ?digest=`` verifies and commits.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from modelpier.control.openapi_errors import error_responses
from modelpier.errors import Conflict, InvalidInput, PayloadTooLarge
from modelpier.registry.digests import validate_digest
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.registry.wire import BlobBody, UploadBody
from modelpier.spec.bounds import MAX_INT64

DIGEST_HEADER = "Pier-Content-Digest"


# Received bytes are written in pieces of this size: large enough to amortise the hop to a worker
# thread, small enough that a request's memory stays bounded whatever its body size.
_FLUSH_BYTES = 4 * 1024 * 1024


async def _stream_into(stager: UploadStager, upload_id: str, offset: int, request: Request, limit: int) -> int:
    """Write the request body to the upload as it arrives; return the new offset.

    If the client goes away mid-body, what arrived is kept, so the next PATCH resumes from it.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"upload request of {declared} bytes is over the limit of {limit} bytes")
    current = await run_in_threadpool(stager.offset, upload_id)
    if current != offset:
        raise Conflict(f"upload {upload_id} is at offset {current}, not {offset}; resume from {current}",
                       details={"upload": upload_id, "offset": current})
    buffer = bytearray()
    received = 0
    try:
        async for part in request.stream():
            received += len(part)
            if received > limit:
                raise PayloadTooLarge(f"upload request is over the limit of {limit} bytes")
            buffer += part
            if len(buffer) >= _FLUSH_BYTES:
                offset = await run_in_threadpool(stager.append, upload_id, offset, [bytes(buffer)])
                buffer = bytearray()
    except ClientDisconnect:
        pass  # keep what arrived; nobody reads this response
    if buffer:
        offset = await run_in_threadpool(stager.append, upload_id, offset, [bytes(buffer)])
    return offset


def blob_router(registry: Registry, stager: UploadStager, *, max_request_bytes: int) -> APIRouter:
    r = APIRouter(tags=["blobs"])

    @r.head("/blobs/{digest}")
    def head_blob(digest: str) -> Response:
        size = registry.blobs.size(validate_digest(digest))
        return Response(headers={"Content-Length": str(size), DIGEST_HEADER: digest})

    @r.get("/blobs/{digest}", response_class=StreamingResponse,
           description="Streams the blob; the stream is verified and aborted if the stored bytes are corrupt.")
    def get_blob(digest: str) -> StreamingResponse:
        size = registry.blobs.size(validate_digest(digest))
        return StreamingResponse(
            registry.blobs.iter_chunks(digest), media_type="application/octet-stream",
            headers={"Content-Length": str(size), DIGEST_HEADER: digest})

    @r.post("/blobs/uploads", response_model=UploadBody, status_code=201)
    def begin_upload() -> UploadBody:
        return UploadBody(upload_id=stager.begin(), offset=0)

    @r.get("/blobs/uploads/{upload_id}", response_model=UploadBody)
    def upload_status(upload_id: str) -> UploadBody:
        return UploadBody(upload_id=upload_id, offset=stager.offset(upload_id))

    @r.patch("/blobs/uploads/{upload_id}", response_model=UploadBody, responses=error_responses(413),
             description="Append the body at `Upload-Offset`; the body may be the whole rest of the blob "
                         "(streamed, chunked transfer encoding) or a piece of it.")
    async def append_chunk(
        upload_id: str, request: Request,
        upload_offset: int = Header(..., alias="Upload-Offset", ge=0, le=MAX_INT64,
                                    description="Byte offset this chunk starts at."),
    ) -> UploadBody:
        offset = await _stream_into(stager, upload_id, upload_offset, request, max_request_bytes)
        return UploadBody(upload_id=upload_id, offset=offset)
    @r.put("/blobs/uploads/{upload_id}", response_model=BlobBody, status_code=201)
    def finish_upload(upload_id: str, digest: str = Query(..., description="sha256:<hex> of the whole blob")
                      ) -> BlobBody:
        if not digest:
            raise InvalidInput("query parameter 'digest' is required")
        stored, size = stager.finish(upload_id, validate_digest(digest), registry.blobs)
        return BlobBody(digest=stored, size=size)

    @r.delete("/blobs/uploads/{upload_id}", status_code=204)
    def abort_upload(upload_id: str) -> Response:
        stager.abort(upload_id)
        return Response(status_code=204)

    return r
