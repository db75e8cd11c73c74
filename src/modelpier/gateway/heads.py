"""Request heads the gateway refuses, whatever the deployment: a pure check, run only when needed.

- Two ``Authorization`` headers: the control plane read the first and the gateway the last, so a
  caller could be checked as one principal and seen by a replica (or a log) as another. Refused.
- A ``Transfer-Encoding`` other than ``chunked`` (``gzip, chunked``): the gateway and the model
  servers decode no transfer coding but chunked, and reading a compressed body as plain bytes
  forwards garbage. Refused with 400, not RFC 9112's optional 501: the mistake is the client's, and
  a 5xx would count against the deployment in its metrics and canary analysis.

``admit`` calls ``check_head`` only when the header dict it builds anyway is shorter than the header
list (some name repeats) or names a transfer coding, so a usual request pays one length comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelpier.errors import InvalidInput


def check_head(headers: Sequence[tuple[bytes, bytes]]) -> InvalidInput | None:
    """The refusal for a request's (lower-cased) headers, or None."""
    authorizations = 0
    codings = 0
    for name, value in headers:
        if name == b"authorization":
            authorizations += 1
        elif name == b"transfer-encoding":
            codings += 1
            if value.strip().lower() != b"chunked":
                return InvalidInput(
                    f"Transfer-Encoding {value.decode('latin-1')!r} is not supported: send the body chunked or "
                    "with Content-Length (compress it with Content-Encoding: gzip instead)",
                    details={"header": "transfer-encoding"})
    if authorizations > 1:
        return InvalidInput(f"the request has {authorizations} Authorization headers; send exactly one",
                            details={"header": "authorization"})
    if codings > 1:
        return InvalidInput("the request has several Transfer-Encoding headers; send one: chunked",
                            details={"header": "transfer-encoding"})
    return None
