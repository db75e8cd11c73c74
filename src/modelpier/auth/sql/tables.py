"""SQLAlchemy 2 typed mappings of the auth tables: users, tokens, members, quotas, audit log, epoch.

Private to ``auth/sql``. Migration ``0003_auth`` creates them (``0004`` the auth epoch); a test
compares the migrated schema with this ``MetaData``. Members and quotas name their project by name
without a foreign key: the projects table belongs to the control plane, above this layer, and the
control plane drops a project's members when it deletes the project.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelpier.registry.sql.tables import NAME_LEN, NAMING_CONVENTION, UTCDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

USER_LEN = 255
HASH_LEN = 64
PREFIX_LEN = 32
ROLE_LEN = 16
METHOD_LEN = 16
PATH_LEN = 1024


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(USER_LEN), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    prefix: Mapped[str] = mapped_column(String(PREFIX_LEN))
    hash: Mapped[str] = mapped_column(String(HASH_LEN), unique=True)
    project: Mapped[str | None] = mapped_column(String(NAME_LEN))
    deployment: Mapped[str | None] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class MemberRow(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(ROLE_LEN))


class QuotaRow(Base):
    __tablename__ = "project_quotas"

    project: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    limits: Mapped[dict[str, Any]]


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "project", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    user: Mapped[str] = mapped_column(String(USER_LEN))
    method: Mapped[str] = mapped_column(String(METHOD_LEN))
    path: Mapped[str] = mapped_column(String(PATH_LEN))
    project: Mapped[str | None] = mapped_column(String(NAME_LEN))
    status: Mapped[int] = mapped_column(Integer)


class AuthEpochRow(Base):
    """One row (id 1): a counter that grows whenever access shrinks. Gateways flush cached token
    checks when it changes; persisted, so it never goes back across restarts."""

    __tablename__ = "auth_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)
