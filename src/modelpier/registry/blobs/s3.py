"""``S3BlobStore``: blobs as objects in an S3-compatible bucket (AWS, MinIO, moto), via boto3.

Keys are ``prefix/sha256/<hex>``. A blob becomes visible only whole and only with the right
bytes: a blob that fits in one part is hashed before it is sent (one ``put_object``); a larger one
is a multipart upload hashed on the way, completed only once its digest is checked and aborted on
any failure. When the digest is not known up front the upload goes to ``prefix/tmp/<id>`` and is
copied server-side to its address. Reads stream and verify like the local store.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from modelpier._lib.ids import new_id
from modelpier.errors import InvalidSpec, NotFound, PierError, ServiceUnavailable
from modelpier.registry.blobs.base import DEFAULT_CHUNK
from modelpier.registry.blobs.verify import (
    IO_CHUNK,
    VerifiedChunks,
    check_expected,
    corrupt,
    hash_stream,
    read_chunks,
    write_atomically,
)
from modelpier.registry.digests import format_digest, hex_of, validate_digest

MIN_PART = 5 * 1024 * 1024  # S3's smallest part, except for the last one
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


class _Tally:
    """The running sha256 and size of what has been read from a stream."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0

    def fill(self, chunks: Iterator[bytes], limit: int, buffer: io.BytesIO | None = None
             ) -> tuple[io.BytesIO, bool]:
        """Read chunks into an (emptied) buffer until it holds ``limit`` bytes; also say whether the
        stream ended."""
        buffer = io.BytesIO() if buffer is None else buffer
        buffer.seek(0)
        buffer.truncate()
        while buffer.tell() < limit:
            chunk = next(chunks, None)
            if chunk is None:
                return buffer, True
            buffer.write(chunk)
            self.hasher.update(chunk)
            self.size += len(chunk)
        return buffer, False

    @property
    def digest(self) -> str:
        return format_digest(self.hasher.hexdigest())


class S3BlobStore:
    """Content-addressed blobs in ``s3://bucket/prefix``. Thread-safe (boto3 clients are)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, *,
                 part_size: int = DEFAULT_CHUNK, client: Any = None) -> None:
        if part_size < MIN_PART:
            raise InvalidSpec(f"S3 part size {part_size} is below S3's minimum of {MIN_PART} bytes")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._part = part_size
        self._client = client or _make_client(endpoint_url)
        self._endpoint = endpoint_url or "AWS S3"
        self._bucket_ok = False
        self._bucket_lock = threading.Lock()

    def key_of(self, digest: str) -> str:
        return self._key(f"sha256/{hex_of(digest)}")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- reading --------------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        try:
            self._head(digest)
        except NotFound:
            return False
        return True

    def size(self, digest: str) -> int:
        return int(self._head(digest)["ContentLength"])

    def iter_chunks(self, digest: str, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
        body = self._get_body(digest)
        return VerifiedChunks(self._guard_stream(body.iter_chunks(chunk_size), digest), digest, self.url,
                              on_close=body.close)

    def fetch_to(self, digest: str, dest: Path) -> None:
        write_atomically(self.iter_chunks(digest, chunk_size=IO_CHUNK), Path(dest))

    def verify(self, digest: str) -> None:
        body = self._get_body(digest)
        try:
            actual, _ = hash_stream(self._guard_stream(body.iter_chunks(IO_CHUNK), digest))
        finally:
            body.close()
        if actual != digest:
            raise corrupt(digest, actual, self.url)

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        self._check_bucket()
        paginator = self._client.get_paginator("list_objects_v2")
        for page in self._call("list", self._key("sha256/"), lambda: list(
                paginator.paginate(Bucket=self.bucket, Prefix=self._key("sha256/")))):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if len(name) == 64:
                    yield f"sha256:{name}", obj["LastModified"].timestamp()

    def delete(self, digest: str) -> None:
        self._call("delete", digest, self._client.delete_object, Bucket=self.bucket, Key=self.key_of(digest))

    # -- writing --------------------------------------------------------------------------------

    def put_file(self, path: Path, *, expected_digest: str | None = None) -> tuple[str, int]:
        # Hash locally first (cheap next to an upload): an existing blob then costs no upload at all,
        # and the upload can go straight to the blob's address.
        with open(path, "rb") as source:
            digest, size = hash_stream(read_chunks(source, IO_CHUNK))
        if expected_digest is not None:
            check_expected(digest, size, validate_digest(expected_digest))
        if self.exists(digest):
            return digest, size
        with open(path, "rb") as source:
            # Checked again on the way up, in case the file changed since it was hashed.
            return self._upload(read_chunks(source, IO_CHUNK), self.key_of(digest), digest)

    def adopt_file(self, path: Path, digest: str) -> tuple[str, int]:
        result = self.put_file(path, expected_digest=digest)
        path.unlink()
        return result

    def put_stream(self, chunks: Iterable[bytes], *, expected_digest: str | None = None) -> tuple[str, int]:
        if expected_digest is not None:
            validate_digest(expected_digest)
            if self.exists(expected_digest):
                digest, size = hash_stream(chunks)
                check_expected(digest, size, expected_digest)
                return digest, size
            return self._upload(chunks, self.key_of(expected_digest), expected_digest)
        return self._upload(chunks, None, None)

    def _upload(self, chunks: Iterable[bytes], key: str | None, expected: str | None) -> tuple[str, int]:
        """Upload to ``key`` (``None``: the blob's address, once known) and return ``(digest, size)``."""
        tally = _Tally()
        stream = iter(chunks)
        buffer, ended = tally.fill(stream, self._part)
        if ended:  # the whole blob is in memory (less than one part): its digest is known
            if expected is not None:
                check_expected(tally.digest, tally.size, expected)
            final = key or self.key_of(tally.digest)
            buffer.seek(0)
            self._call("upload", final, self._client.put_object, Bucket=self.bucket, Key=final, Body=buffer)
            return tally.digest, tally.size
        target = key or self._key(f"tmp/{new_id()}")
        self._multipart(stream, target, tally, buffer, expected)
        if key is not None:
            return tally.digest, tally.size
        try:
            final = self.key_of(tally.digest)
            if not self.exists(tally.digest):
                self._call("copy", final, self._client.copy, {"Bucket": self.bucket, "Key": target},
                           self.bucket, final)
        finally:
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self.bucket, Key=target)
        return tally.digest, tally.size

    def _multipart(self, stream: Iterator[bytes], key: str, tally: _Tally, first: io.BytesIO,
                   expected: str | None) -> None:
        created = self._call("upload", key, self._client.create_multipart_upload, Bucket=self.bucket, Key=key)
        upload_id = created["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            buffer, ended = first, False
            while buffer.tell() > 0:
                buffer.seek(0)
                number = len(parts) + 1
                answer = self._call("upload", key, self._client.upload_part, Bucket=self.bucket, Key=key,
                                    UploadId=upload_id, PartNumber=number, Body=buffer)
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                if ended:
                    break
                # Refill the same buffer: one part in memory at a time, however large the blob.
                buffer, ended = tally.fill(stream, self._part, buffer)
            if expected is not None:
                check_expected(tally.digest, tally.size, expected)
            self._call("upload", key, self._client.complete_multipart_upload, Bucket=self.bucket, Key=key,
                       UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            # Nothing half-written stays behind: the parts are discarded, the key never appears.
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    # -- plumbing -------------------------------------------------------------------------------

    def _head(self, digest: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("look up", digest, self._client.head_object,
                                            Bucket=self.bucket, Key=self.key_of(digest))
        return result

    def _get_body(self, digest: str) -> Any:
        return self._call("read", digest, self._client.get_object, Bucket=self.bucket,
                          Key=self.key_of(digest))["Body"]

    def _guard_stream(self, chunks: Iterator[bytes], digest: str) -> Iterator[bytes]:
        try:
            yield from chunks
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._translate(exc, "read", digest) from exc

    def _call(self, what: str, subject: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, what, subject) from exc

    def _translate(self, exc: Exception, what: str, subject: str) -> PierError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _NOT_FOUND_CODES:
                self._check_bucket()  # a HEAD in a missing bucket is a bare 404 too
                return NotFound(f"blob {subject} is not in {self.url}", details={"digest": subject})
            reason = f"{code} {error.get('Message', '')}".strip()
            message = f"S3 {what} of {subject} in {self.url} failed: {reason}"
            if code in _TRANSIENT_CODES:
                return ServiceUnavailable(message)
            return PierError(message, details={"s3_code": code})
        if isinstance(exc, NoCredentialsError):
            return InvalidSpec(f"no S3 credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY, or an AWS profile")
        return ServiceUnavailable(f"cannot {what} {subject} in {self.url}: S3 endpoint {self._endpoint} "
                                  f"is unreachable ({exc})", details={"endpoint": self._endpoint})

    def _check_bucket(self) -> None:
        with self._bucket_lock:
            if self._bucket_ok:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchBucket", "NotFound"):
                    raise self._no_bucket() from exc
                raise self._translate(exc, "look up", f"bucket {self.bucket}") from exc
            except BotoCoreError as exc:
                raise self._translate(exc, "look up", f"bucket {self.bucket}") from exc
            self._bucket_ok = True

    def _no_bucket(self) -> InvalidSpec:
        return InvalidSpec(f"S3 bucket {self.bucket!r} does not exist at {self._endpoint}: create it or fix "
                           f"the blob URL {self.url}", details={"bucket": self.bucket})


def _make_client(endpoint_url: str | None) -> Any:
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        # S3-compatible servers (MinIO, moto) are addressed by path, not by bucket subdomain.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
