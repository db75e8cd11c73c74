"""The dashboard's HTTP plumbing: templates, the session cookie, CSRF checks, error pages, headers.

Every page handler is wrapped by ``Dashboard.page`` (needs a signed-in session) or
``Dashboard.action`` (a POST: also a valid CSRF token). The wrappers turn the error tree into an
error page with the error's own status (a viewer's change is the API's 403, an unknown model its
404) and anything unexpected into a 500 page with an id that is also logged: never a traceback.
A session whose token the API stops accepting (revoked, expired) is ended and the user is sent to
sign in again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelpier._lib.ids import new_id
from modelpier.dashboard.links import login_url, safe_next
from modelpier.dashboard.session import MAX_AGE_S, SESSION_COOKIE, Session, SessionSigner, SessionStore, same_secret
from modelpier.dashboard.traffic import NONE
from modelpier.dashboard.usage import format_bytes
from modelpier.errors import Forbidden, PayloadTooLarge, PierError, Unauthenticated, http_status
from modelpier.sdk.control_api import AsyncControlClient

log = logging.getLogger("modelpier.dashboard")

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
# The dashboard's calls to its own control plane: in-process (the host is never resolved), so no retries.
IN_PROCESS_URL = "http://control-plane"
API_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_FORM_BYTES = 2 * 1024 * 1024  # the try-it body is the largest field (1 MiB)

Page = Callable[[Request, Session], Awaitable[Response]]
Action = Callable[[Request, Session, FormData], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

# Scripts and styles only from the dashboard's own static files; htmx is configured (base.html) not
# to inject styles or evaluate code, so no 'unsafe-inline'/'unsafe-eval' is needed.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                 b"object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` (and ``no-store`` on pages, which show private data) to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope["path"]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _when(value: datetime | None) -> str:
    if value is None:
        return NONE
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return NONE
    seconds = max(0.0, (datetime.now(UTC) - value.astimezone(UTC)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def build_templates() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(bytes=format_bytes, when=_when, ago=_ago, short_digest=lambda d: str(d)[:19])
    return env


class Dashboard:
    """What every page needs: sessions, templates, and an API client for the signed-in user.

    The dashboard is a client of ``/api/v1`` like the CLI, never a second implementation: every read
    and change passes the same authentication, access rules, quotas and audit log, so a viewer gets
    the API's 403. The calls go in-process through an ASGI transport (no socket, no extra port).
    """

    def __init__(self, *, control: ASGIApp, sessions: SessionStore, signer: SessionSigner,
                 gateway_url: str | None, templates: Environment | None = None,
                 try_timeout_s: float = 30.0) -> None:
        self.control = control
        self.sessions = sessions
        self.signer = signer
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.templates = templates or build_templates()
        self.try_timeout_s = try_timeout_s

    def api(self, session: Session) -> AsyncControlClient:
        return self.api_for(session.token)

    def api_for(self, token: str) -> AsyncControlClient:
        return AsyncControlClient(IN_PROCESS_URL, token=token, timeout=API_TIMEOUT, retries=0, trust_env=False,
                                  transport=httpx.ASGITransport(app=self.control))

    # -- sessions -----------------------------------------------------------------------------------
    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(self.signer.unsign(request.cookies.get(SESSION_COOKIE)))

    def set_session_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(SESSION_COOKIE, self.signer.sign(session.id), max_age=int(MAX_AGE_S),
                            path=base_path(request) + "/", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")

    def clear_session_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=base_path(request) + "/", httponly=True, samesite="lax",
                               secure=request.url.scheme == "https")

    # -- rendering ----------------------------------------------------------------------------------
    def render(self, request: Request, template: str, *, session: Session | None, status: int = 200,
               headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        base = base_path(request)
        context.setdefault("title", "")
        context.setdefault("nav", "")
        html = self.templates.get_template(template).render(
            base=base, static=f"{base}/static", session=session, csrf=session.csrf if session else "",
            flashes=session.take_flashes() if session and not is_htmx(request) else [],
            path=request.url.path, **context)
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))

    def error_page(self, request: Request, error: PierError, session: Session | None, *,
                   status: int | None = None) -> Response:
        status = status or http_status(error)
        titles = {403: "Not allowed", 404: "Not found", 405: "Not allowed here", 409: "Conflict",
                  401: "Sign-in needed"}
        title = titles.get(status, "Request refused" if status < 500 else "Something went wrong")
        return self.render(request, "error.html", session=session, status=status, title=title,
                           message=error.message, code=error.code, http_status=status, back=self._back(request))

    @staticmethod
    def _back(request: Request) -> str | None:
        """The page the user came from, when it is a dashboard page of this host (a link back)."""
        referer = urlsplit(request.headers.get("referer", ""))
        if not referer.path or referer.netloc != request.headers.get("host"):
            return None
        back = safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), base_path(request))
        return None if back == request.url.path else back

    def to_login(self, request: Request, *, expired: bool = False) -> Response:
        target = login_url(base_path(request), request.url.path + (f"?{request.url.query}" if request.url.query
                                                                    else ""), expired=expired)
        if is_htmx(request):  # a polled fragment cannot show a page: have htmx load the sign-in page
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    # -- wrappers -----------------------------------------------------------------------------------
    async def _guard(self, request: Request, session: Session, run: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await run()
        except Unauthenticated:
            # The API refused the session's token (revoked or expired since sign-in): sign out.
            self.sessions.drop(session.id)
            response = self.to_login(request, expired=True)
            self.clear_session_cookie(request, response)
            return response
        except PierError as exc:
            return self.error_page(request, exc, session)
        except Exception as exc:
            error_id = new_id(6)
            log.error("unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
            return self.error_page(request, PierError(f"internal error (id {error_id}); the server log has the "
                                                      "details"), session)

    def page(self, handler: Page) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                return self.to_login(request)
            return await self._guard(request, session, lambda: handler(request, session))
        return endpoint

    def action(self, handler: Action) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                return self.to_login(request)

            async def run() -> Response:
                form = await read_form(request)
                token = form.get("csrf")
                if not same_secret(session.csrf, token if isinstance(token, str) else None):
                    raise Forbidden("the form's CSRF token is missing or stale; reload the page and try again")
                return await handler(request, session, form)
            return await self._guard(request, session, run)
        return endpoint


async def read_form(request: Request) -> FormData:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"a dashboard form is at most {MAX_FORM_BYTES} bytes")
    return await request.form(max_files=0, max_part_size=MAX_FORM_BYTES)


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (``/ui``, or below a proxy's prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, path: str) -> RedirectResponse:
    """303 to a dashboard path (after a form: the browser GETs the page, a reload does not re-post)."""
    return RedirectResponse(base_path(request) + path, status_code=303)


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def quoted(value: str) -> str:
    return quote(value, safe="")
