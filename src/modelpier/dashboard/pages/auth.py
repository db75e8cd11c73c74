"""Sign in with an API token, sign out.

The token is checked by calling the API's ``/whoami`` with it; on success a new session holds it
(``dashboard.session``). The sign-in form has no session yet, so its CSRF protection is a
double-submit cookie: a random value in a ``SameSite=Strict`` cookie that the form must repeat.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from modelpier.dashboard.links import safe_next
from modelpier.dashboard.session import LOGIN_CSRF_COOKIE, Session, new_secret, same_secret
from modelpier.dashboard.web import Dashboard, base_path, read_form, text_field
from modelpier.errors import PierError, Unauthenticated, http_status
from modelpier.sdk.control_api import access as access_calls

MAX_TOKEN_CHARS = 256


def auth_routes(dash: Dashboard) -> list[BaseRoute]:
    def login_page(request: Request, *, status: int = 200, error: str = "") -> Response:
        csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_secret()
        base = base_path(request)
        expired = request.query_params.get("expired") == "1" and not error
        response = dash.render(request, "login.html", session=None, status=status, title="Sign in", error=error,
                               expired=expired, login_csrf=csrf,
                               next=safe_next(request.query_params.get("next"), base))
        response.set_cookie(LOGIN_CSRF_COOKIE, csrf, path=f"{base}/login", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def login(request: Request) -> Response:
        if dash.session_of(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next"), base_path(request)), 303)
        return login_page(request)

    async def sign_in(request: Request) -> Response:
        form = await read_form(request)
        if not same_secret(request.cookies.get(LOGIN_CSRF_COOKIE, ""), text_field(form, "login_csrf")):
            return login_page(request, status=403, error="The sign-in form expired; please sign in again.")
        token = text_field(form, "token")
        if not token:
            return login_page(request, status=400, error="Enter an API token.")
        if len(token) > MAX_TOKEN_CHARS:
            return login_page(request, status=400, error=f"An API token is at most {MAX_TOKEN_CHARS} characters.")
        try:
            async with dash.api_for(token) as api:
                me = await api.send(access_calls.whoami())
        except Unauthenticated as exc:
            return login_page(request, status=401, error=f"That token was not accepted: {exc.message}")
        except PierError as exc:
            return login_page(request, status=http_status(exc), error=exc.message)
        session: Session = dash.sessions.create(token, user=me.user, admin=me.admin)
        session.flash("ok", f"Signed in as {me.user}{' (platform admin)' if me.admin else ''}.")
        response = RedirectResponse(safe_next(text_field(form, "next"), base_path(request)), 303)
        dash.set_session_cookie(request, response, session)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{base_path(request)}/login")
        return response

    async def logout(request: Request, session: Session, _form: object) -> Response:
        dash.sessions.drop(session.id)
        response = RedirectResponse(f"{base_path(request)}/login", 303)
        dash.clear_session_cookie(request, response)
        return response

    return [Route("/login", login, methods=["GET"]), Route("/login", sign_in, methods=["POST"]),
            Route("/logout", dash.action(logout), methods=["POST"])]

