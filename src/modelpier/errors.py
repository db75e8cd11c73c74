"""The one error hierarchy of modelpier.

Every failure a user can cause or meet is one of these classes. Each carries a protocol-neutral
``code`` (a short snake_case word that clients may switch on), a human message that names the
problem, and optional ``details``. Transports own the maps from these classes to their own status
codes: HTTP in ``ERROR_HTTP_STATUS`` below (used by every FastAPI app through one handler), CLI exit
codes in ``ERROR_EXIT_CODE``. A unit test checks every class has both.

    PierError
    ├── InvalidInput                 bad input a caller can fix (400/422)
    │   ├── InvalidName              a name that is not a DNS-1123 label
    │   ├── InvalidReference         a model reference that does not parse
    │   ├── InvalidSpec              a spec or signature that does not validate
    │   └── InvalidArtifact          a model file the flavor cannot read, wrong flavor
    ├── NotFound                     unknown model, version, alias, blob, upload (404)
    ├── Conflict                     the state does not allow it (409)
    │   └── AlreadyExists
    ├── IntegrityError               bytes do not match their digest (422)
    │   ├── DigestMismatch           upload or download whose sha256 is not the one announced
    │   └── CorruptBlob              a stored blob that no longer matches its address
    ├── PayloadTooLarge              (413)
    │   └── HeadersTooLarge          a request line and headers over the server's limit (431)
    ├── Unauthenticated              (401)
    ├── Forbidden                    (403)
    ├── StoreBusy                    the database is locked; retry later (423)
    ├── RemoteError                  a remote server answered with an error (its status)
    │   └── RemoteUnreachable        cannot connect to the remote at all
    ├── DeadlineExceeded             a request did not finish in time (504)
    └── ServiceUnavailable           transient: not ready (503)
        └── Overloaded               a queue is full; carries a Retry-After hint (503)

Nothing outside this tree should reach a user: API apps turn unexpected exceptions into a logged
500 with an error id, the CLI into a one-line message and exit code 1.
"""

from __future__ import annotations

from typing import Any


class PierError(Exception):
    """Base of every modelpier error."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The platform's one error envelope."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(PierError):
    code = "invalid_input"


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidReference(InvalidInput):
    code = "invalid_reference"


class InvalidSpec(InvalidInput):
    code = "invalid_spec"


class InvalidArtifact(InvalidInput):
    code = "invalid_artifact"


class NotFound(PierError):
    code = "not_found"


class Conflict(PierError):
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class IntegrityError(PierError):
    code = "integrity_error"


class DigestMismatch(IntegrityError):
    code = "digest_mismatch"


class CorruptBlob(IntegrityError):
    code = "corrupt_blob"


class PayloadTooLarge(PierError):
    code = "payload_too_large"


class HeadersTooLarge(PayloadTooLarge):
    code = "headers_too_large"


class Unauthenticated(PierError):
    code = "unauthenticated"


class Forbidden(PierError):
    code = "forbidden"


class StoreBusy(PierError):
    code = "store_busy"


class RemoteError(PierError):
    """A remote modelpier server answered with an error; ``status`` is what it answered."""

    code = "remote_error"

    def __init__(
        self, message: str, *, status: int = 502, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.status = status


class RemoteUnreachable(RemoteError):
    code = "remote_unreachable"


class DeadlineExceeded(PierError):
    code = "deadline_exceeded"


class ServiceUnavailable(PierError):
    code = "service_unavailable"


class Overloaded(ServiceUnavailable):
    """A queue is full; ``retry_after_s`` tells the client when to try again."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


# HTTP status for each class; the most specific class in the MRO wins (see ``http_status``).
ERROR_HTTP_STATUS: dict[type[PierError], int] = {
    PierError: 500,
    InvalidInput: 400,
    InvalidName: 422,
    InvalidReference: 422,
    InvalidSpec: 422,
    InvalidArtifact: 422,
    NotFound: 404,
    Conflict: 409,
    AlreadyExists: 409,
    IntegrityError: 422,
    DigestMismatch: 422,
    CorruptBlob: 422,
    PayloadTooLarge: 413,
    HeadersTooLarge: 431,
    Unauthenticated: 401,
    Forbidden: 403,
    # 423 Locked: the resource is temporarily locked by another writer; the client retries.
    StoreBusy: 423,
    RemoteError: 502,
    RemoteUnreachable: 502,
    DeadlineExceeded: 504,
    ServiceUnavailable: 503,
    Overloaded: 503,
}

# CLI exit codes; 1 stays for unexpected failures, 2 is Click's usage error.
ERROR_EXIT_CODE: dict[type[PierError], int] = {
    PierError: 1,
    InvalidInput: 3,
    InvalidName: 3,
    InvalidReference: 3,
    InvalidSpec: 3,
    InvalidArtifact: 3,
    NotFound: 4,
    Conflict: 5,
    AlreadyExists: 5,
    IntegrityError: 6,
    DigestMismatch: 6,
    CorruptBlob: 6,
    PayloadTooLarge: 3,
    HeadersTooLarge: 3,
    Unauthenticated: 7,
    Forbidden: 7,
    StoreBusy: 8,
    RemoteError: 9,
    RemoteUnreachable: 9,
    DeadlineExceeded: 8,
    ServiceUnavailable: 8,
    Overloaded: 8,
}


def _lookup(error: PierError, table: dict[type[PierError], int]) -> int:
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return table[PierError]


def http_status(error: PierError) -> int:
    """The HTTP status for an error; a remote error keeps the remote's 4xx status."""
    if isinstance(error, RemoteError) and 400 <= error.status < 500:
        return error.status
    return _lookup(error, ERROR_HTTP_STATUS)


def exit_code(error: PierError) -> int:
    """The CLI exit code for an error."""
    return _lookup(error, ERROR_EXIT_CODE)


def from_envelope(status: int, body: Any) -> PierError:
    """Rebuild an error from a remote's envelope, so the CLI reports the remote's own words."""
    code = ""
    message = f"remote answered HTTP {status}"
    details: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code", ""))
        message = str(err.get("message", message))
        details = err.get("details") or {}
    for cls in ERROR_HTTP_STATUS:
        if cls.code == code and cls not in (PierError, RemoteError, RemoteUnreachable):
            return cls(message, details=details)
    return RemoteError(message, status=status, details=details)
