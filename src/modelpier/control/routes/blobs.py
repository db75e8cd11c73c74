"""Blob routes: content-addressed downloads and chunked, resumable uploads.

The upload flow follows the OCI distribution API's shape, which registry users already know:
``POST /blobs/uploads`` opens a session, ``PATCH`` appends a chunk at ``Upload-Offset``, ``GET``
tells the current offset (so an interrupted push resumes), ``PUT ?digest=`` verifies and commits.
A chunk body is bounded by ``max_chunk_bytes`` so one request never holds more than that in memory.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from modelpier.errors import InvalidInput, PayloadTooLarge
from modelpier.registry.digests import validate_digest
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.registry.wire import BlobBody, UploadBody

DIGEST_HEADER = "Pier-Content-Digest"


async def _read_chunk(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"upload chunk of {declared} bytes is over the limit of {limit} bytes")
    parts: list[bytes] = []
    total = 0
    async for part in request.stream():
        total += len(part)
        if total > limit:
            raise PayloadTooLarge(f"upload chunk is over the limit of {limit} bytes")
        parts.append(part)
    return b"".join(parts)


def blob_router(registry: Registry, stager: UploadStager, *, max_chunk_bytes: int) -> APIRouter:
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

    @r.patch("/blobs/uploads/{upload_id}", response_model=UploadBody)
    async def append_chunk(
        upload_id: str, request: Request,
        upload_offset: int = Header(..., alias="Upload-Offset", ge=0,
                                    description="Byte offset this chunk starts at."),
    ) -> UploadBody:
        chunk = await _read_chunk(request, max_chunk_bytes)
        offset = await run_in_threadpool(stager.append, upload_id, upload_offset, [chunk])
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
