"""HTTP mapping of the one error tree for the platform API: the envelope and its handlers.

The status and ``Retry-After`` of each error come from the tree's one map (``errors.py``); this
module only answers with them.

Every response the control plane sends on failure is ``{"error": {"code", "message", "details"}}``.
Unexpected exceptions become a 500 with an error id that is also logged, never a traceback.

Logged once: an ``Exception`` handler of Starlette's runs in its outermost middleware, which
re-raises after answering, so uvicorn logged the same traceback a second time. A middleware of
ours (``CatchUnexpected``, innermost but for the routing) answers and swallows instead; the
``Exception`` handler stays for what fails outside it (another middleware), with a one-line log
since uvicorn prints that traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelpier._lib.ids import new_id
from modelpier.errors import PierError, http_status, retry_after_s

log = logging.getLogger("modelpier.control")

_HTTP_CODES = {400: "invalid_input", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def envelope(status: int, code: str, message: str, details: dict[str, object] | None = None) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


async def _pier_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PierError)
    response = JSONResponse(exc.to_dict(), status_code=http_status(exc))
    hint = retry_after_s(exc)  # a locked store (423) or a service not ready (503): when to come back
    if hint is not None:
        response.headers["Retry-After"] = str(hint)
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return envelope(422, "invalid_input", "; ".join(problems) or "invalid request",
                    {"errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]})


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = envelope(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), str(exc.detail))
    response.headers.update(exc.headers or {})  # a 405's Allow, as RFC 9110 requires
    return response


def _internal(error_id: str) -> JSONResponse:
    return envelope(500, "internal", f"internal error (id {error_id}); the server log has the details",
                    {"error_id": error_id})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    error_id = new_id(6)
    # No traceback here: Starlette re-raises after this handler, and uvicorn logs it with one.
    log.error("unexpected error %s on %s %s: %s: %s (traceback follows)", error_id, request.method,
              request.url.path, type(exc).__name__, exc)
    return _internal(error_id)


class CatchUnexpected:
    """Answers an exception a route raised (not one of ours) with the 500 envelope, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            error_id = new_id(6)
            log.error("unexpected error %s on %s %s", error_id, scope["method"], scope["path"], exc_info=exc)
            if not started:  # else the client sees the response cut short: nothing more can be said
                await _internal(error_id)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PierError, _pier_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(CatchUnexpected)
