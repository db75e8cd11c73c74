"""Frozen objects the auth store hands out: users, token records (never the secret), audit entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelpier.auth.access import Role


@dataclass(frozen=True, slots=True)
class User:
    name: str
    admin: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listings show it: the display prefix, never the secret or its hash."""

    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    project: str | None = None      # invocation keys only: the deployment's project
    deployment: str | None = None   # invocation keys only: the one deployment they may invoke

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Member:
    project: str
    user: str
    role: Role


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One mutating call: who, what (method and path), when, result (HTTP status)."""

    id: int
    at: datetime
    user: str
    method: str
    path: str
    project: str | None
    status: int
