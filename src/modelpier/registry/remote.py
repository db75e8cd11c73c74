"""``RegistryClient``: the registry API of a remote control plane, over HTTP.

Maps transport failures onto the error tree: a refused or timed-out connection is
``RemoteUnreachable`` naming the URL; an error answer is rebuilt from the server's envelope, so the
CLI shows the server's own message with the right exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit

import httpx

from modelpier.errors import RemoteUnreachable, from_envelope
from modelpier.registry.wire import (
    BlobBody,
    CreatedVersionBody,
    LockBody,
    ModelBody,
    NewVersionBody,
    UploadBody,
    VersionBody,
)

_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class RegistryClient:
    def __init__(self, base_url: str, *, token: str | None = None, transport: httpx.BaseTransport | None = None,
                 project: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # The project's registry; None: /api/v1/models, the default project's. Blobs are shared.
        self._models = f"/projects/{project}/models" if project else "/models"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v1", headers=self._headers, timeout=_TIMEOUT,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise RemoteUnreachable(f"cannot reach the modelpier server at {self.base_url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise RemoteUnreachable(
                f"connection to {self.base_url} failed during {method} {path}: {exc}") from exc
        return raise_for_error(response)

    # -- models -------------------------------------------------------------------------------
    def list_models(self, *, search: str | None = None) -> list[ModelBody]:
        params = {"search": search} if search else {}
        return [ModelBody.model_validate(m) for m in self._send("GET", self._models, params=params).json()]

    def get_model(self, name: str) -> ModelBody:
        return ModelBody.model_validate(self._send("GET", f"{self._models}/{name}").json())

    def delete_model(self, name: str) -> None:
        self._send("DELETE", f"{self._models}/{name}")

    def list_versions(self, name: str) -> list[VersionBody]:
        return [VersionBody.model_validate(v) for v in self._send("GET", f"{self._models}/{name}/versions").json()]

    def get_version(self, name: str, selector: str) -> VersionBody:
        return VersionBody.model_validate(self._send("GET", f"{self._models}/{name}/versions/{selector}").json())

    def create_version(self, name: str, body: NewVersionBody) -> CreatedVersionBody:
        response = self._send("POST", f"{self._models}/{name}/versions", content=body.model_dump_json(),
                              headers={"Content-Type": "application/json"})
        return CreatedVersionBody.model_validate(response.json())

    def delete_version(self, name: str, version: int) -> None:
        self._send("DELETE", f"{self._models}/{name}/versions/{version}")

    def set_alias(self, name: str, alias: str, version: int) -> VersionBody:
        response = self._send("PUT", f"{self._models}/{name}/aliases/{alias}", json={"version": version})
        return VersionBody.model_validate(response.json())

    def delete_alias(self, name: str, alias: str) -> None:
        self._send("DELETE", f"{self._models}/{name}/aliases/{alias}")

    def set_model_tag(self, name: str, key: str, value: str) -> ModelBody:
        return ModelBody.model_validate(
            self._send("PUT", f"{self._models}/{name}/tags/{key}", json={"value": value}).json())

    def delete_model_tag(self, name: str, key: str) -> None:
        self._send("DELETE", f"{self._models}/{name}/tags/{key}")

    def set_version_tag(self, name: str, selector: str, key: str, value: str) -> VersionBody:
        response = self._send("PUT", f"{self._models}/{name}/versions/{selector}/tags/{key}", json={"value": value})
        return VersionBody.model_validate(response.json())

    def delete_version_tag(self, name: str, selector: str, key: str) -> None:
        self._send("DELETE", f"{self._models}/{name}/versions/{selector}/tags/{key}")

    def set_lock(self, name: str, selector: str, lock: LockBody) -> VersionBody:
        response = self._send("PUT", f"{self._models}/{name}/versions/{selector}/lock",
                              content=lock.model_dump_json(exclude={"digest"}),
                              headers={"Content-Type": "application/json"})
        return VersionBody.model_validate(response.json())

    # -- blobs --------------------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        try:
            response = self._http.head(f"/blobs/{digest}")
        except httpx.TransportError as exc:
            raise RemoteUnreachable(f"cannot reach the modelpier server at {self.base_url}: {exc}") from exc
        if response.status_code == 404:
            return False
        raise_for_error(response)
        return True

    def begin_upload(self) -> UploadBody:
        return UploadBody.model_validate(self._send("POST", "/blobs/uploads").json())

    def upload_offset(self, upload_id: str) -> int:
        return UploadBody.model_validate(self._send("GET", f"/blobs/uploads/{upload_id}").json()).offset

    def append_stream(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Send ``chunks`` as one streamed request body starting at ``offset``; return the new offset."""
        response = self._send("PATCH", f"/blobs/uploads/{upload_id}", content=chunks,
                              headers={"Upload-Offset": str(offset),
                                       "Content-Type": "application/octet-stream"})
        return UploadBody.model_validate(response.json()).offset

    def finish_upload(self, upload_id: str, digest: str) -> BlobBody:
        response = self._send("PUT", f"/blobs/uploads/{upload_id}", params={"digest": digest})
        return BlobBody.model_validate(response.json())

    def iter_blob(self, digest: str, *, chunk_size: int) -> Iterator[bytes]:
        """Stream a blob's bytes; the caller verifies the digest (``BlobStore.put_stream`` does).

        Downloads go through the standard library's ``http.client`` rather than httpx: it fills
        each chunk with C-level reads of the size asked for, where httpx parses 64 KiB pieces in
        Python and joins them; on one core that was the difference between ~175 and 200+ MB/s
        (docs/benchmarks.md). Only this hot path does so; everything else uses the httpx client.
        """
        url = urlsplit(f"{self.base_url}/api/v1/blobs/{digest}")
        connection_class = HTTPSConnection if url.scheme == "https" else HTTPConnection
        connection = connection_class(url.hostname or "localhost", url.port, timeout=_TIMEOUT.read)
        try:
            connection.request("GET", url.path, headers=self._headers)
            response = connection.getresponse()
            if response.status >= 400:
                raise from_envelope(response.status, _json_bytes_or_none(response.read()))
            while chunk := response.read(chunk_size):
                yield chunk
        except (OSError, HTTPException) as exc:
            raise RemoteUnreachable(f"download of {digest} from {self.base_url} broke off: {exc}") from exc
        finally:
            connection.close()


def raise_for_error(response: httpx.Response) -> httpx.Response:
    """The response, or the error its envelope names (the remote's own message and class)."""
    if response.status_code >= 400:
        raise from_envelope(response.status_code, _json_bytes_or_none(response.content))
    return response


def _json_bytes_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
