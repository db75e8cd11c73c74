"""Blob routes: content-addressed downloads and chunked, resumable uploads.

The upload flow follows the OCI distribution API's shape, which registry users already know:
``POST /blobs/uploads`` opens a session, ``PATCH`` appends its body at ``Upload-Offset`` (streamed to
disk as it arrives, so one request may carry the whole blob), ``GET`` tells the current offset (so
an interrupted push resumes), ``PUT ?digest=`` verifies and commits.

Unfinished uploads count against a project's storage quota as their bytes arrive: ``POST
/blobs/uploads?project=`` names the project (the caller must be an editor there; default: the
``default`` project if the caller may write there, else the first project they edit), and each
piece of a body is admitted only if the project's stored bytes, its pending uploads and the piece
stay within its quota (403 ``forbidden`` naming the quota otherwise). Ending an upload releases it.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from modelpier.auth.access import Action, Allow, Principal, decide_access
from modelpier.control.api.openapi_errors import error_responses
from modelpier.control.api.security import denial, principal_of
from modelpier.control.deployments.quota import LimitsSource, require_storage_within_quota
from modelpier.errors import Conflict, Forbidden, InvalidInput, PayloadTooLarge
from modelpier.registry.digests import validate_digest
from modelpier.registry.service import Registry
from modelpier.registry.uploads import UploadStager
from modelpier.registry.wire import BlobBody, CollectedBody, UploadBody
from modelpier.spec.bounds import MAX_INT64

DIGEST_HEADER = "Pier-Content-Digest"


# Received bytes are written in pieces of this size: large enough to amortise the hop to a worker
# thread, small enough that a request's memory stays bounded whatever its body size.
_FLUSH_BYTES = 4 * 1024 * 1024


Admit = Callable[[str, int], None]  # (upload id, bytes about to be written): raises Forbidden past the quota


def _upload_project(principal: Principal, named: str | None) -> str | None:
    """The project an upload is charged to (None: an admin's upload into no project in particular)."""
    if named is not None:
        decision = decide_access(principal, Action.write, named)
        if not isinstance(decision, Allow):
            raise denial(decision)
        return named
    if principal.admin:
        return None
    editable = [p for p in principal.roles if isinstance(decide_access(principal, Action.write, p), Allow)]
    if not editable:
        raise Forbidden("uploading needs the editor role in at least one project")
    return "default" if "default" in editable else sorted(editable)[0]


async def _stream_into(stager: UploadStager, upload_id: str, offset: int, request: Request, *, limit: int,
                       admit: Admit) -> int:
    """Write the request body to the upload as it arrives; return the new offset.

    If the client goes away mid-body, what arrived is kept, so the next PATCH resumes from it.
    Each piece is admitted against the storage quota before it is written.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"upload request of {declared} bytes is over the limit of {limit} bytes")
    if declared is not None and declared.isdigit():
        await run_in_threadpool(admit, upload_id, int(declared))  # refuse at once what cannot fit
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
                offset = await run_in_threadpool(_admit_and_append, stager, admit, upload_id, offset, bytes(buffer))
                buffer = bytearray()
    except ClientDisconnect:
        pass  # keep what arrived; nobody reads this response
    if buffer:
        offset = await run_in_threadpool(_admit_and_append, stager, admit, upload_id, offset, bytes(buffer))
    return offset


def _admit_and_append(stager: UploadStager, admit: Admit, upload_id: str, offset: int, data: bytes) -> int:
    admit(upload_id, len(data))
    return stager.append(upload_id, offset, [data])


def blob_router(registry: Registry, stager: UploadStager, *, max_request_bytes: int,
                limits: LimitsSource | None = None, gc_grace_s: float = 3600.0) -> APIRouter:
    r = APIRouter(tags=["blobs"])

    @r.post("/blobs/gc", response_model=CollectedBody,
            description="Delete the blobs no version references, written more than `grace_s` ago (admins; the "
                        "control plane also runs this every `control.blob_gc_interval_s`).")
    def collect_garbage(grace_s: float | None = Query(
            None, ge=0, le=365 * 86_400, description="Default: `control.blob_gc_grace_s`.")) -> CollectedBody:
        return CollectedBody(deleted=registry.collect_garbage(gc_grace_s if grace_s is None else grace_s))

    def admit(upload_id: str, added: int) -> None:
        project = stager.project_of(upload_id)
        if project is None or limits is None:
            return
        quota = limits(project)
        if quota.storage_bytes is None:
            return
        stored = registry.metadata.storage_bytes(project) + stager.pending_bytes(project)
        require_storage_within_quota(stored, added, quota)

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
    def begin_upload(request: Request, project: str | None = Query(
            None, description="The project whose storage quota the upload counts against until it ends "
                              "(default: `default` if the caller may write there, else the first they edit).")
                     ) -> UploadBody:
        return UploadBody(upload_id=stager.begin(_upload_project(principal_of(request), project)), offset=0)

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
        offset = await _stream_into(stager, upload_id, upload_offset, request, limit=max_request_bytes, admit=admit)
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
