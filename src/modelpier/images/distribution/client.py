"""``DistributionClient``: the OCI distribution API over httpx, for one registry host.

What it does, in the API's words: GET manifests (an index or a manifest, OCI or Docker types),
HEAD blobs (a layer the registry has is never sent again), cross-repository mounts (``POST
uploads/?mount=&from=``: a base layer in another repository of the same registry is linked, not
copied), chunked uploads (``POST`` then ``PATCH`` with ``Content-Range``, ``PUT ?digest=`` to
finish) that resume where the registry says they stopped (``GET`` the upload → ``Range: 0-N``)
after a dropped connection or a 5xx, and manifest PUTs. Authentication follows the registry's
401 challenge (see ``auth.py``): tokens are fetched per scope and reused.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

from modelpier.errors import (
    DigestMismatch,
    InvalidInput,
    NotFound,
    PierError,
    RemoteError,
    RemoteUnreachable,
    Unauthenticated,
)
from modelpier.images.distribution.auth import Challenge, Credentials, parse_challenge
from modelpier.images.oci.layout import INDEX_TYPES, MANIFEST_TYPES, sha256_digest

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES: Final = 16 * 1024 * 1024
_ACCEPT: Final = ", ".join([*MANIFEST_TYPES, *INDEX_TYPES])
_RESUME_ATTEMPTS: Final = 5
Progress = Callable[[int], None]


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


class DistributionClient:
    """A client of one registry (``host`` as in an image reference; ``insecure``: plain HTTP)."""

    def __init__(self, host: str, *, insecure: bool = False, credentials: Credentials | None = None,
                 transport: httpx.BaseTransport | None = None, timeout_s: float = 120.0,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        if chunk_bytes < 1:
            raise InvalidInput("chunk size must be at least one byte")
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credentials = credentials
        self.chunk_bytes = chunk_bytes
        self._http = httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=True)
        self._auth: dict[str, str] = {}  # scope → Authorization header value

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DistributionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests and authentication ------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        return path_or_url if path_or_url.startswith(("http://", "https://")) else self.base + path_or_url

    def _send(self, method: str, url: str, scope: str, *, content: bytes | None = None,
              headers: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
        for attempt in range(2):
            request = self._http.build_request(method, self._url(url), content=content,
                                               headers={**(headers or {}), **self._auth_header(scope)})
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise RemoteUnreachable(f"cannot reach the image registry {self.host}: {exc}") from exc
            if response.status_code != 401 or attempt:
                return response
            response.close()
            self._authenticate(parse_challenge(response.headers.get("www-authenticate", "")), scope)
        raise AssertionError("unreachable")  # pragma: no cover  # the loop returns on its second turn

    def _auth_header(self, scope: str) -> dict[str, str]:
        value = self._auth.get(scope) or self._auth.get("*")
        return {"Authorization": value} if value else {}

    def _authenticate(self, challenge: Challenge, scope: str) -> None:
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise Unauthenticated(f"the image registry {self.host} needs a user name and password")
            self._auth["*"] = self.credentials.basic_header()
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise Unauthenticated(f"the image registry {self.host} refused the request and asks for an "
                                  f"authentication this client does not know ({challenge.scheme or 'none'})")
        params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scope.split(" ")]
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        headers = {"Authorization": self.credentials.basic_header()} if self.credentials else {}
        try:
            answer = self._http.get(challenge.params["realm"], params=params, headers=headers)
        except httpx.TransportError as exc:
            raise RemoteUnreachable(f"cannot reach the token service {challenge.params['realm']}: {exc}") from exc
        if answer.status_code in (401, 403):
            raise Unauthenticated(f"the token service of {self.host} refused "
                                  f"{'the credentials' if self.credentials else 'an anonymous request'} "
                                  f"for {scope}")
        if answer.status_code != 200:
            raise RemoteError(f"the token service of {self.host} answered HTTP {answer.status_code}",
                              status=answer.status_code)
        body: dict[str, Any] = answer.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RemoteError(f"the token service of {self.host} answered without a token")
        self._auth[scope] = f"Bearer {token}"

    def _fail(self, response: httpx.Response, what: str) -> PierError:
        if not response.is_stream_consumed:
            response.read()
        message = ""
        try:
            errors = response.json().get("errors") or []
            message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            message = response.text[:200]
        text = f"{what}: the image registry {self.host} answered HTTP {response.status_code}" + (
            f" ({message})" if message else "")
        if response.status_code == 404:
            return NotFound(text)
        if response.status_code in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "an anonymous client"
            return Unauthenticated(f"{text}: {who} may not do this; log in (docker/skopeo/podman login) or "
                                   f"pass --creds USER:PASSWORD")
        return RemoteError(text, status=response.status_code)

    # -- reading ------------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the API (401 is fine: it then wants a token per repository)."""
        response = self._send("GET", "/v2/", "*")
        if response.status_code not in (200, 401):
            raise self._fail(response, "GET /v2/")

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """``(bytes, media type, digest)`` of a manifest or index."""
        response = self._send("GET", f"/v2/{repo}/manifests/{reference}", _pull(repo), headers={"Accept": _ACCEPT})
        if response.status_code != 200:
            raise self._fail(response, f"manifest {repo}:{reference}")
        data = response.content
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {repo}@{reference} arrived with digest {digest}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return data, media_type, digest

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self._send("HEAD", f"/v2/{repo}/blobs/{digest}", _pull(repo))
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, f"HEAD blob {digest}")

    def get_blob(self, repo: str, digest: str) -> bytes:
        response = self._send("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo))
        if response.status_code != 200:
            raise self._fail(response, f"blob {digest}")
        if sha256_digest(response.content) != digest:
            raise DigestMismatch(f"blob {digest} of {repo} arrived with other bytes")
        return response.content

    def fetch_blob(self, repo: str, digest: str, dest: Path, progress: Progress | None = None) -> None:
        """Stream a blob into ``dest`` (via a temporary file), verified against its digest."""
        response = self._send("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo), stream=True)
        try:
            if response.status_code != 200:
                raise self._fail(response, f"blob {digest}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            sha = hashlib.sha256()
            with tmp.open("wb") as out:
                for chunk in response.iter_bytes(1024 * 1024):
                    sha.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
        except httpx.TransportError as exc:
            raise RemoteUnreachable(f"the download of {digest} from {self.host} broke off: {exc}") from exc
        finally:
            response.close()
        if f"sha256:{sha.hexdigest()}" != digest:
            tmp.unlink(missing_ok=True)
            raise DigestMismatch(f"blob {digest} of {repo} arrived with other bytes")
        tmp.replace(dest)

    # -- writing ------------------------------------------------------------------------------
    def mount_blob(self, repo: str, digest: str, source_repo: str) -> str | None:
        """Link a blob from ``source_repo`` of the same registry. ``None`` when mounted; else the
        upload location the registry opened instead (it may not allow the mount)."""
        url = str(httpx.URL(self._url(f"/v2/{repo}/blobs/uploads/")).copy_merge_params(
            {"mount": digest, "from": source_repo}))
        response = self._send("POST", url, f"{_push(repo)} {_pull(source_repo)}")
        if response.status_code == 201:
            return None
        if response.status_code == 202:
            return str(response.headers["location"])
        raise self._fail(response, f"mount {digest} from {source_repo}")

    def upload_blob(self, repo: str, digest: str, source: Path, *, location: str | None = None,
                    progress: Progress | None = None) -> None:
        """Upload ``source`` (whose sha256 is ``digest``) in chunks; resumes after a failure."""
        size = source.stat().st_size
        if location is None:
            location = self._start_upload(repo)
        offset, attempts = 0, 0
        with source.open("rb") as fh:
            while offset < size:
                fh.seek(offset)
                chunk = fh.read(self.chunk_bytes)
                try:
                    response = self._send("PATCH", location, _push(repo), content=chunk, headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        "Content-Length": str(len(chunk))})
                except RemoteUnreachable as exc:
                    attempts += 1
                    if attempts > _RESUME_ATTEMPTS:
                        raise
                    log.warning("upload of %s broke off at %d bytes (%s); resuming", digest, offset, exc.message)
                    offset = self._uploaded(repo, location)
                    continue
                if response.status_code == 202:
                    location = str(response.headers.get("location") or location)
                    offset = self._range_end(response, offset + len(chunk))
                    if progress:
                        progress(len(chunk))
                    continue
                if response.status_code in (416,) or response.status_code >= 500:
                    attempts += 1
                    if attempts > _RESUME_ATTEMPTS:
                        raise self._fail(response, f"upload of {digest}")
                    offset = self._uploaded(repo, location)
                    continue
                raise self._fail(response, f"upload of {digest}")
        # The location carries the registry's own query (its upload state): add to it, never replace it.
        finish = str(httpx.URL(self._url(location)).copy_merge_params({"digest": digest}))
        done = self._send("PUT", finish, _push(repo), content=b"", headers={"Content-Length": "0"})
        if done.status_code != 201:
            raise self._fail(done, f"finishing the upload of {digest}")

    def _start_upload(self, repo: str) -> str:
        response = self._send("POST", f"/v2/{repo}/blobs/uploads/", _push(repo), headers={"Content-Length": "0"})
        if response.status_code != 202:
            raise self._fail(response, f"starting an upload to {repo}")
        return str(response.headers["location"])

    @staticmethod
    def _range_end(response: httpx.Response, default: int) -> int:
        """The next byte to send, from a ``Range: 0-N`` header (N is the last byte stored)."""
        value = response.headers.get("range")
        if not value:
            return default
        _, _, end = value.removeprefix("bytes=").partition("-")
        return int(end) + 1

    def _uploaded(self, repo: str, location: str) -> int:
        """How much of an upload the registry holds (``GET`` on the upload's location)."""
        response = self._send("GET", location, _push(repo))
        if response.status_code not in (202, 204):
            raise self._fail(response, "resuming an upload")
        # The CNCF registry answers "0-0" for an empty upload as for a one-byte one; chunks are
        # far larger than a byte, so "0-0" means start again.
        end = self._range_end(response, 0)
        return 0 if end == 1 else end

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or its digest); its digest."""
        response = self._send("PUT", f"/v2/{repo}/manifests/{reference}", _push(repo), content=data,
                              headers={"Content-Type": media_type})
        if response.status_code not in (200, 201):
            raise self._fail(response, f"manifest {repo}:{reference}")
        digest = sha256_digest(data)
        announced = response.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise DigestMismatch(f"the registry stored manifest {repo}:{reference} as {announced}, not {digest}")
        return digest
