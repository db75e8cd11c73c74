"""Dashboard sessions: who is signed in, with which API token, and their CSRF secret. No I/O.

The browser holds only an opaque, signed session id (cookie ``pier_session``); the API token the
user signed in with stays in this process's memory and is sent to the control-plane API on their
behalf (docs/dashboard.md says why). The id is 256 random bits; the HMAC over it, keyed from the
server secret, lets a forged or tampered cookie be refused before any lookup. Sessions end after
``idle_s`` without a request, ``max_age_s`` after sign-in, at sign-out, or when the process
restarts. ``capacity`` bounds memory: the least recently seen sessions go first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from modelpier._lib.clock import Clock

SESSION_COOKIE = "pier_session"
LOGIN_CSRF_COOKIE = "pier_login_csrf"
# A working day without a request (the deployment page's polling counts as requests)...
IDLE_S = 8 * 3600.0
# ...and at most a day after sign-in: a stolen session id is useful for a bounded time.
MAX_AGE_S = 24 * 3600.0
# Each session is a few hundred bytes; 10,000 concurrent sign-ins is far more than a team has.
CAPACITY = 10_000
_KEY_LABEL = b"modelpier dashboard session v1"  # domain separation from the token-hash key

FlashKind = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class Flash:
    """A one-time message shown on the next page (after a form's redirect)."""

    kind: FlashKind
    text: str


@dataclass(slots=True)
class Session:
    id: str
    token: str = field(repr=False)
    user: str
    admin: bool
    csrf: str = field(repr=False)
    created: float
    seen: float
    flashes: list[Flash] = field(default_factory=list)

    def flash(self, kind: FlashKind, text: str) -> None:
        self.flashes.append(Flash(kind, text))

    def take_flashes(self) -> list[Flash]:
        taken, self.flashes = self.flashes, []
        return taken


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def same_secret(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token; a missing one never matches."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


class SessionSigner:
    """``id.mac`` cookie values; the key is derived from the server secret, never the secret itself."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()

    def sign(self, session_id: str) -> str:
        return f"{session_id}.{self._mac(session_id)}"

    def unsign(self, value: str | None) -> str | None:
        """The session id of a cookie value, or None when it is absent, malformed or forged."""
        if not value or value.count(".") != 1:
            return None
        session_id, mac = value.split(".")
        return session_id if session_id and hmac.compare_digest(mac, self._mac(session_id)) else None


class SessionStore:
    """Sessions by id, in memory, oldest-seen first. Used from the event loop's thread only."""

    def __init__(self, clock: Clock, *, idle_s: float = IDLE_S, max_age_s: float = MAX_AGE_S,
                 capacity: int = CAPACITY) -> None:
        self._clock = clock
        self._idle_s, self._max_age_s, self._capacity = idle_s, max_age_s, capacity
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, token: str, *, user: str, admin: bool) -> Session:
        """A new session (a new id at every sign-in, so an id planted before it is worthless)."""
        now = self._clock.monotonic()
        while len(self._sessions) >= self._capacity:
            self._sessions.popitem(last=False)
        session = Session(id=secrets.token_urlsafe(32), token=token, user=user, admin=admin, csrf=new_secret(),
                          created=now, seen=now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, marked as seen now; expired ones are dropped."""
        if session_id is None:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock.monotonic()
        if now - session.seen > self._idle_s or now - session.created > self._max_age_s:
            del self._sessions[session_id]
            return None
        session.seen = now
        self._sessions.move_to_end(session_id)
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
