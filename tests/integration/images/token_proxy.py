"""A registry front that wants tokens, as Docker Hub, ghcr.io and ECR do (for the token-auth test).

It simulates Docker Hub's auth: every ``/v2/`` request without a valid Bearer token is answered
401 with ``WWW-Authenticate: Bearer realm="…/token",service="…",scope="…"``; ``GET /token`` hands out
a token for the scopes asked, given the right basic credentials (none: anonymous pulls only); a
push with a token that lacks ``push`` on the repository is refused. Valid requests are forwarded
to the real loopback registry behind it.
"""

from __future__ import annotations

import base64
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

_RELAYED = ("location", "range", "docker-content-digest", "content-type", "docker-upload-uuid",
            "docker-distribution-api-version")


class TokenProxy:
    def __init__(self, upstream: str, user: str, password: str) -> None:
        self.upstream = upstream
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tokens: dict[str, list[str]] = {}  # token -> scopes
        self.issued: list[list[str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TokenProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _allowed(self, token: str, method: str, path: str) -> bool:
        scopes = self.tokens.get(token)
        if scopes is None:
            return False
        if path == "/v2/":
            return True
        repo = path.removeprefix("/v2/").split("/blobs/")[0].split("/manifests/")[0]
        action = "pull" if method in ("GET", "HEAD") else "push"
        return any(s.startswith(f"repository:{repo}:") and action in s.rsplit(":", 1)[1].split(",") for s in scopes)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if url.path == "/token":
                    scopes = parse_qs(url.query).get("scope", [])
                    if self.headers.get("authorization") != proxy.expected:
                        scopes = [s for s in scopes if s.endswith(":pull")]  # anonymous: pulls only
                        if not scopes:
                            self._answer(401, {})
                            return
                    token = secrets.token_hex(8)
                    proxy.tokens[token] = scopes
                    proxy.issued.append(scopes)
                    self._answer(200, {"Content-Type": "application/json"}, f'{{"token": "{token}"}}'.encode())
                    return
                auth = self.headers.get("authorization", "")
                if not auth.startswith("Bearer ") or not proxy._allowed(auth[7:], self.command, url.path):
                    repo = url.path.removeprefix("/v2/").split("/blobs/")[0].split("/manifests/")[0]
                    challenge = (f'Bearer realm="http://{proxy.host}/token",service="loopback-registry",'
                                 f'scope="repository:{repo}:pull,push"')
                    self._answer(401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
                                 b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "content-range", "accept")}
                answer = httpx.request(self.command, f"http://{proxy.upstream}{self.path}", content=body,
                                       headers=headers, timeout=120)
                self._answer(answer.status_code, {k: v for k, v in answer.headers.items() if k.lower() in _RELAYED},
                             answer.content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815  # http.server's names

        return Handler
