"""The one error hierarchy of modelpier, and its one map to every transport.

Every failure a user can cause or meet is one of these classes. Each carries a protocol-neutral
``code`` (a short snake_case word that clients may switch on), a human message that names the
problem, and optional ``details``. Each class also declares its ``wire``: the HTTP status, the gRPC
status code (a ``grpc.StatusCode`` name, so this bottom layer needs no grpc) and the CLI's exit
code. Transports read that one declaration through a few lines of adapter: the control plane's
FastAPI handlers, the model server's HTTP (V2, KServe V1, Seldon, MLflow) and gRPC, the gateway's
HTTP and gRPC, the CLI. A unit test walks every subclass, wherever defined, on every transport.

    PierError                        HTTP  gRPC
    ├── InvalidInput                 400   INVALID_ARGUMENT  bad input a caller can fix
    │   ├── InvalidName              422   INVALID_ARGUMENT  a name that is not a DNS-1123 label
    │   ├── InvalidReference         422   INVALID_ARGUMENT  a model reference that does not parse
    │   ├── InvalidSpec              422   INVALID_ARGUMENT  a spec or signature that does not validate
    │   └── InvalidArtifact          422   INVALID_ARGUMENT  a model file the flavor cannot read
    ├── NotFound                     404   NOT_FOUND         unknown model, version, alias, blob, upload
    ├── Conflict                     409   ABORTED           the state does not allow it (now)
    │   └── AlreadyExists            409   ALREADY_EXISTS
    ├── IntegrityError               422   INVALID_ARGUMENT  bytes do not match their digest
    │   ├── DigestMismatch           422   INVALID_ARGUMENT  upload or download with another sha256
    │   └── CorruptBlob              422   INVALID_ARGUMENT  a stored blob that no longer matches
    ├── PayloadTooLarge              413   RESOURCE_EXHAUSTED
    │   └── HeadersTooLarge          431   RESOURCE_EXHAUSTED  request line and headers over the limit
    ├── Unauthenticated              401   UNAUTHENTICATED
    ├── Forbidden                    403   PERMISSION_DENIED
    ├── StoreBusy                    423   UNAVAILABLE       the database is locked; retry later
    ├── RemoteError                  502   INTERNAL          a remote answered with an error (its 4xx kept)
    │   └── RemoteUnreachable        502   UNAVAILABLE       cannot connect to the remote at all
    ├── DeadlineExceeded             504   DEADLINE_EXCEEDED a request did not finish in time
    └── ServiceUnavailable           503   UNAVAILABLE       transient: not ready
        └── Overloaded               503   RESOURCE_EXHAUSTED  a queue is full; carries a Retry-After hint

The gRPC code follows the HTTP status (google.rpc.Code's documented mapping, ``GRPC_CODE_OF_HTTP``)
with two deliberate exceptions: ``Overloaded`` is RESOURCE_EXHAUSTED, not UNAVAILABLE, so a caller
sees one code for "too much load, retry shortly" wherever a limit was hit (a replica's queue, the
gateway's ``limits.maxInFlight``, a message over the size limit), while UNAVAILABLE stays "nothing
can serve this now"; and ``AlreadyExists`` is gRPC's own ALREADY_EXISTS where HTTP has only 409.

Protocol rules on top of the declaration, each in one function here: the inference protocols (V2,
KServe V1, Seldon) answer 400 for every ``InvalidInput`` (``inference_http_status``); Seldon's error
body is ``seldon_error``; ``Retry-After`` is ``retry_after_s``.

Nothing outside this tree should reach a user: API apps turn unexpected exceptions into a logged
500 with an error id, the CLI into a one-line message and exit code 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

# The names of ``grpc.StatusCode`` members; a transport turns one into the enum with ``StatusCode[name]``.
GrpcCode = Literal[
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
]


@dataclass(frozen=True, slots=True)
class Wire:
    """How one error class is reported on each transport."""

    http: int  # the status of the platform API, the gateway and the model server's other routes
    grpc: GrpcCode  # the gRPC status code, by name
    exit: int  # the CLI's exit code; 1 stays for unexpected failures, 2 is Click's usage error


class PierError(Exception):
    """Base of every modelpier error."""

    code = "error"
    wire: ClassVar[Wire] = Wire(500, "INTERNAL", exit=1)

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
    wire = Wire(400, "INVALID_ARGUMENT", exit=3)


class InvalidName(InvalidInput):
    code = "invalid_name"
    wire = Wire(422, "INVALID_ARGUMENT", exit=3)


class InvalidReference(InvalidInput):
    code = "invalid_reference"
    wire = Wire(422, "INVALID_ARGUMENT", exit=3)


class InvalidSpec(InvalidInput):
    code = "invalid_spec"
    wire = Wire(422, "INVALID_ARGUMENT", exit=3)


class InvalidArtifact(InvalidInput):
    code = "invalid_artifact"
    wire = Wire(422, "INVALID_ARGUMENT", exit=3)


class NotFound(PierError):
    code = "not_found"
    wire = Wire(404, "NOT_FOUND", exit=4)


class Conflict(PierError):
    code = "conflict"
    wire = Wire(409, "ABORTED", exit=5)


class AlreadyExists(Conflict):
    code = "already_exists"
    wire = Wire(409, "ALREADY_EXISTS", exit=5)


class IntegrityError(PierError):
    code = "integrity_error"
    wire = Wire(422, "INVALID_ARGUMENT", exit=6)


class DigestMismatch(IntegrityError):
    code = "digest_mismatch"
    wire = Wire(422, "INVALID_ARGUMENT", exit=6)


class CorruptBlob(IntegrityError):
    code = "corrupt_blob"
    wire = Wire(422, "INVALID_ARGUMENT", exit=6)


class PayloadTooLarge(PierError):
    code = "payload_too_large"
    # RESOURCE_EXHAUSTED is also what gRPC itself answers for a message over its size limit.
    wire = Wire(413, "RESOURCE_EXHAUSTED", exit=3)


class HeadersTooLarge(PayloadTooLarge):
    code = "headers_too_large"
    wire = Wire(431, "RESOURCE_EXHAUSTED", exit=3)


class Unauthenticated(PierError):
    code = "unauthenticated"
    wire = Wire(401, "UNAUTHENTICATED", exit=7)


class Forbidden(PierError):
    code = "forbidden"
    wire = Wire(403, "PERMISSION_DENIED", exit=7)


class StoreBusy(PierError):
    code = "store_busy"
    # 423 Locked: the resource is temporarily locked by another writer; the client retries.
    wire = Wire(423, "UNAVAILABLE", exit=8)


class RemoteError(PierError):
    """A remote modelpier server answered with an error; ``status`` is what it answered."""

    code = "remote_error"
    # INTERNAL: an answer that cannot be used; retrying the same call will not help.
    wire = Wire(502, "INTERNAL", exit=9)

    def __init__(
        self, message: str, *, status: int = 502, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.status = status


class RemoteUnreachable(RemoteError):
    code = "remote_unreachable"
    wire = Wire(502, "UNAVAILABLE", exit=9)


class DeadlineExceeded(PierError):
    code = "deadline_exceeded"
    wire = Wire(504, "DEADLINE_EXCEEDED", exit=8)


class ServiceUnavailable(PierError):
    code = "service_unavailable"
    wire = Wire(503, "UNAVAILABLE", exit=8)


class Overloaded(ServiceUnavailable):
    """A queue is full; ``retry_after_s`` tells the client when to try again."""

    code = "overloaded"
    wire = Wire(503, "RESOURCE_EXHAUSTED", exit=8)  # see the module docstring

    def __init__(self, message: str, *, retry_after_s: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


def _tree(root: type[PierError]) -> tuple[type[PierError], ...]:
    return (root, *(cls for sub in root.__subclasses__() for cls in _tree(sub)))


# The classes of this module, parents first; subclasses defined elsewhere inherit their parent's wire.
ERROR_CLASSES: tuple[type[PierError], ...] = _tree(PierError)
# Views of the declarations, for readers that go by status (OpenAPI) or by code (clients).
ERROR_HTTP_STATUS: dict[type[PierError], int] = {cls: cls.wire.http for cls in ERROR_CLASSES}
ERROR_EXIT_CODE: dict[type[PierError], int] = {cls: cls.wire.exit for cls in ERROR_CLASSES}
_BY_CODE: dict[str, type[PierError]] = {cls.code: cls for cls in ERROR_CLASSES}

# The gRPC code of an HTTP status, for answers known only by their status (google.rpc.Code's mapping;
# 423 Locked and 502 are retried or not as UNAVAILABLE and INTERNAL are).
GRPC_CODE_OF_HTTP: dict[int, GrpcCode] = {
    200: "OK", 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 413: "RESOURCE_EXHAUSTED", 422: "INVALID_ARGUMENT", 423: "UNAVAILABLE",
    429: "RESOURCE_EXHAUSTED", 431: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 501: "UNIMPLEMENTED",
    502: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
# The HTTP status a gRPC code counts as (google.rpc.Code's documented mapping).
HTTP_STATUS_OF_GRPC: dict[str, int] = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


def error_class(code: str) -> type[PierError] | None:
    """The class of this module whose ``code`` it is; None for a code it does not know."""
    return _BY_CODE.get(code)


def http_status(error: PierError) -> int:
    """The HTTP status for an error; a remote error keeps the remote's 4xx status."""
    if isinstance(error, RemoteError) and 400 <= error.status < 500:
        return error.status
    return error.wire.http


def inference_http_status(error: PierError) -> int:
    """The status on the inference protocols (V2, KServe V1, Seldon, MLflow scoring): every input error
    is 400 Bad Request there, where the platform API tells a request that does not validate (422)."""
    return 400 if isinstance(error, InvalidInput) else http_status(error)


def grpc_code(error: PierError) -> GrpcCode:
    """The gRPC status code (its ``grpc.StatusCode`` name) for an error."""
    if isinstance(error, RemoteError) and 400 <= error.status < 500:
        return grpc_code_of_http(error.status)
    return error.wire.grpc


def grpc_code_of_http(status: int, error_code: str | None = None) -> GrpcCode:
    """The gRPC code of an answer known by its HTTP status and, in the platform's envelope, its error code."""
    cls = error_class(error_code) if error_code else None
    if cls is not None and cls is not PierError and not (issubclass(cls, RemoteError) and 400 <= status < 500):
        return cls.wire.grpc
    if status in GRPC_CODE_OF_HTTP:
        return GRPC_CODE_OF_HTTP[status]
    return "INTERNAL" if status >= 500 else "UNKNOWN"


def exit_code(error: PierError) -> int:
    """The CLI exit code for an error."""
    return error.wire.exit


def retry_after_s(error: PierError) -> int | None:
    """The ``Retry-After`` hint for an error that is worth retrying soon; None for the others."""
    if isinstance(error, Overloaded):
        return error.retry_after_s
    return 1 if isinstance(error, (ServiceUnavailable, StoreBusy)) else None


def seldon_error(error: PierError) -> dict[str, Any]:
    """Seldon Core v1's error body: its ``status`` object, with Seldon's own reason for bad input."""
    reason = "MICROSERVICE_BAD_DATA" if isinstance(error, InvalidInput) else error.code.upper()
    return {"status": {"code": inference_http_status(error), "info": error.message, "reason": reason,
                       "status": "FAILURE"}}


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
    cls = error_class(code)
    if cls is not None and cls not in (PierError, RemoteError, RemoteUnreachable):
        return cls(message, details=details)
    return RemoteError(message, status=status, details=details)
