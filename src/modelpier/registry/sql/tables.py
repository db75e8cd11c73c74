"""SQLAlchemy 2 typed mappings of the registry's metadata tables.

Private to ``registry/sql``: ``SqlMetadataStore`` turns rows into frozen domain objects before they
leave. The naming convention on ``metadata`` gives every constraint and index a predictable name,
so Alembic migrations can refer to them on every dialect (SQLite batch mode needs names to drop
or alter constraints). Change these mappings only together with a new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Lengths: names and aliases are DNS-1123 labels (63), tag keys 128, digests "sha256:" + 64 hex.
NAME_LEN = 63
DEFAULT_PROJECT = "default"
TAG_KEY_LEN = 128
DIGEST_LEN = 71


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    SQLite has no time zones and hands back naive values; PostgreSQL hands back the session's
    zone. Both come out as aware UTC datetimes, so domain objects compare and serialize the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class ModelRow(Base):
    __tablename__ = "models"
    # A name is unique within its project (migration 0004): another tenant's names are invisible.
    __table_args__ = (UniqueConstraint("project", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    # The project the model belongs to (migration 0003).
    project: Mapped[str] = mapped_column(String(NAME_LEN), default=DEFAULT_PROJECT, server_default=DEFAULT_PROJECT)
    description: Mapped[str] = mapped_column(Text, default="")
    # Highest number ever given to a version of this model. Numbers come from this counter, not
    # from max(version), so a deleted version's number is never reused, and incrementing it locks
    # the model row: concurrent creators of one model's versions queue up instead of colliding.
    last_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    tags: Mapped[list[ModelTagRow]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True)


class ModelTagRow(Base):
    __tablename__ = "model_tags"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(TAG_KEY_LEN), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        UniqueConstraint("model_id", "digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(DIGEST_LEN))
    size: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    input_example: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    metrics: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(Text, default="")
    environment: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    image: Mapped[str | None] = mapped_column(Text, nullable=True)  # migration 0006

    files: Mapped[list[VersionFileRow]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True,
        order_by="VersionFileRow.path")
    tags: Mapped[list[VersionTagRow]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True)
    # Aliases are written through their own rows; this side only reads the names pointing here.
    aliases: Mapped[list[AliasRow]] = relationship(lazy="selectin", viewonly=True)


class VersionFileRow(Base):
    __tablename__ = "version_files"
    __table_args__ = (Index(None, "digest"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_LEN))
    size: Mapped[int] = mapped_column(BigInteger)


class VersionTagRow(Base):
    __tablename__ = "version_tags"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(TAG_KEY_LEN), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(NAME_LEN))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
