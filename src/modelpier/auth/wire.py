"""JSON bodies of the tokens, users, members, quota and audit API, shared by the routes, client and CLI.

A token's secret appears in exactly one body, ``CreatedTokenBody``, the answer to its creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelpier.auth.access import Role
from modelpier.auth.domain import AuditEntry, Member, TokenInfo, User
from modelpier.auth.quota import Limits
from modelpier.spec.bounds import Count, LifetimeS

RoleName = Literal["viewer", "editor", "owner"]


class NewTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A label to tell tokens apart (DNS-1123 label).")
    user: str | None = Field(None, max_length=255, description="Owner; default the caller (others: admins only).")
    expires_in_s: LifetimeS | None = Field(None, description="Lifetime in seconds (at most 100 years); default "
                                                             "never expires.")


class NewKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A label for the invocation key (DNS-1123 label).")
    expires_in_s: LifetimeS | None = Field(None, description="Lifetime in seconds (at most 100 years); default "
                                                             "never expires.")


class TokenBody(BaseModel):
    id: int
    user: str
    name: str
    prefix: str = Field(description="The first characters of the token, to recognise it; not usable.")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    project: str | None = None
    deployment: str | None = None

    @classmethod
    def of(cls, t: TokenInfo) -> TokenBody:
        return cls(id=t.id, user=t.user, name=t.name, prefix=t.prefix, created_at=t.created_at,
                   expires_at=t.expires_at, revoked_at=t.revoked_at, project=t.project, deployment=t.deployment)


class CreatedTokenBody(TokenBody):
    token: str = Field(description="The secret, shown this once; only its hash is stored.")


class WhoAmIBody(BaseModel):
    user: str
    admin: bool
    roles: dict[str, RoleName]


class UserBody(BaseModel):
    name: str
    admin: bool
    created_at: datetime
    roles: dict[str, RoleName] = Field(description="The user's role in each project they are a member of.")

    @classmethod
    def of(cls, user: User, roles: Mapping[str, Role]) -> UserBody:
        return cls(name=user.name, admin=user.admin, created_at=user.created_at,
                   roles={p: r.name for p, r in sorted(roles.items())})


class MemberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(max_length=255)
    role: RoleName

    @classmethod
    def of(cls, m: Member) -> MemberBody:
        return cls(user=m.user, role=m.role.name)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleName

    def to_role(self) -> Role:
        return Role[self.role]


class QuotaBody(BaseModel):
    """Per-project limits; null is unlimited. CPU in millicores, memory and storage in bytes."""

    model_config = ConfigDict(extra="forbid")

    replicas: Count | None = None
    cpu_millis: Count | None = None
    memory_bytes: Count | None = None
    gpus: Count | None = None
    storage_bytes: Count | None = None
    deployments: Count | None = None

    def to_limits(self) -> Limits:
        return Limits(**self.model_dump())


class AuditBody(BaseModel):
    id: int
    at: datetime
    user: str
    method: str
    path: str
    project: str | None
    status: int

    @classmethod
    def of(cls, e: AuditEntry) -> AuditBody:
        return cls(id=e.id, at=e.at, user=e.user, method=e.method, path=e.path, project=e.project, status=e.status)


class InvocationCheckBody(BaseModel):
    """What a gateway asks: may ``token`` invoke ``project/deployment``? (The token travels in the body,
    which no log or audit entry records.)"""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(max_length=63)
    deployment: str = Field(max_length=63)
    token: str = Field(max_length=256)


class InvocationAnswerBody(BaseModel):
    allowed: bool
