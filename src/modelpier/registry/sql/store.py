"""``SqlMetadataStore``: the ``MetadataStore`` protocol over SQLAlchemy (SQLite or PostgreSQL).

Each public method runs in its own short transaction and returns frozen domain objects; rows never
leave this module. Writes on SQLite take the write lock up front (``BEGIN IMMEDIATE``, see
``engine.py``); on PostgreSQL version numbering locks the model row. Unique constraints back both
up: a writer that still loses a race (``IntegrityError``) rolls back and retries, re-reading what
the winner wrote. Every SQLAlchemy error is translated by ``dberrors.translate``.
"""

from __future__ import annotations

import hashlib
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import CursorResult, delete, func, select, text, update
from sqlalchemy.orm import Session

from modelpier.errors import Conflict, NotFound
from modelpier.registry.digests import validate_digest
from modelpier.registry.domain import Model, ModelVersion, NewVersion
from modelpier.registry.sql import convert, queries
from modelpier.registry.sql.base import SqlStore, guarded
from modelpier.registry.sql.tables import (
    DEFAULT_PROJECT,
    AliasRow,
    ModelRow,
    ModelTagRow,
    VersionFileRow,
    VersionRow,
    VersionTagRow,
)
from modelpier.registry.store import Admission
from modelpier.spec.names import ModelRef, validate_alias, validate_name, validate_tag_key

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# Attempts for a write that lost a race (unique violation, PostgreSQL deadlock/serialization).
MAX_ATTEMPTS = 20


def storage_lock_key(project: str) -> int:
    """A PostgreSQL advisory-lock key (signed 64-bit) naming one project's registry storage."""
    digest = hashlib.blake2b(f"modelpier-storage:{project}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _ExistingVersion(Exception):
    """Not an error: raised to roll the transaction back, then caught to return this version."""

    def __init__(self, version: ModelVersion) -> None:
        super().__init__(version.ref)
        self.version = version


class SqlMetadataStore(SqlStore):
    """Registry metadata in a SQL database. Thread-safe; share one instance per process."""

    # -- models -----------------------------------------------------------------------------------

    @guarded
    def ensure_model(self, name: str, *, description: str = "", project: str = DEFAULT_PROJECT) -> Model:
        """The model ``name`` of ``project``, created (with ``description``) if new."""
        validate_name(name)
        validate_name(project, what="project name")
        with self._read() as session:
            row = session.scalar(select(ModelRow).where(ModelRow.project == project, ModelRow.name == name))
            if row is not None:
                return queries.model_out(session, row)

        def work(session: Session) -> Model:
            return queries.model_out(session, self._model_for_write(session, project, name, description))

        return self._write_retrying(work, f"creating model {name!r}")

    def _model_for_write(self, session: Session, project: str, name: str, description: str = "") -> ModelRow:
        # Insert-or-get: a concurrent creator makes our insert fail; the retry then finds it.
        row = session.scalar(select(ModelRow).where(ModelRow.project == project, ModelRow.name == name))
        if row is None:
            now = self._clock.now()
            row = ModelRow(name=name, description=description, project=project, created_at=now, updated_at=now,
                           last_version=0)
            session.add(row)
            session.flush()
        return row

    @guarded
    def get_model(self, name: str, *, project: str = DEFAULT_PROJECT) -> Model:
        validate_name(name)
        with self._read() as session:
            return queries.model_out(session, queries.model_row(session, project, name))

    @guarded
    def list_models(self, *, search: str | None = None, project: str | None = None) -> list[Model]:
        query = select(ModelRow).order_by(ModelRow.name, ModelRow.project)
        if project is not None:
            query = query.where(ModelRow.project == project)
        if search:
            query = query.where(func.lower(ModelRow.name).contains(search.lower(), autoescape=True))
        with self._read() as session:
            rows = session.scalars(query).all()
            return queries.models_out(session, rows)

    @guarded
    def update_model(self, name: str, *, description: str, project: str = DEFAULT_PROJECT) -> Model:
        validate_name(name)
        with self._write() as session:
            row = queries.model_row(session, project, name)
            row.description = description
            row.updated_at = self._clock.now()
            session.flush()
            return queries.model_out(session, row)

    @guarded
    def delete_model(self, name: str, *, project: str = DEFAULT_PROJECT) -> list[ModelVersion]:
        validate_name(name)
        with self._write() as session:
            row = queries.model_row(session, project, name)
            versions = session.scalars(
                select(VersionRow).where(VersionRow.model_id == row.id).order_by(VersionRow.version)).all()
            out = [convert.version_out(name, v) for v in versions]
            # The database cascades to versions, files, tags and aliases (foreign keys ON DELETE CASCADE).
            session.execute(delete(ModelRow).where(ModelRow.id == row.id))
            return out

    # -- versions ---------------------------------------------------------------------------------

    @guarded
    def create_version(self, new: NewVersion, *, project: str = DEFAULT_PROJECT,
                       admit: Admission | None = None) -> tuple[ModelVersion, bool]:
        """See ``MetadataStore.create_version``; also creates the model if it does not exist.

        Algorithm: in one write transaction, get or insert the model row, increment its version
        counter (this takes the model row's lock, so concurrent creators of one model queue up),
        then look for the manifest digest: if present, roll back (no number is used up, no gap)
        and return the existing version; else ask ``admit`` (usage, bytes added) and insert the
        version with the counter's value. With ``admit``, the transaction first takes the
        project's storage lock (SQLite: the write lock ``BEGIN IMMEDIATE`` already holds;
        PostgreSQL: an advisory lock), so two pushes racing for the last bytes of a quota are
        checked one after the other, each seeing what the other stored. Were two writers still
        to collide, the unique constraints on (project, name), (model, version) and (model,
        digest) reject one of them, which rolls back and runs the whole step again.
        """
        convert.validate_new_version(new)
        validate_name(project, what="project name")
        digest, size = new.digest, new.size

        def work(session: Session) -> ModelVersion:
            now = self._clock.now()
            if admit is not None:
                self._lock_project_storage(session, project)
            model = self._model_for_write(session, project, new.model)
            locked = cast("CursorResult[Any]", session.execute(
                update(ModelRow).where(ModelRow.id == model.id)
                .values(last_version=ModelRow.last_version + 1, updated_at=now)
                .execution_options(synchronize_session=False)))
            if locked.rowcount == 0:
                raise NotFound(f"model {new.model!r} was deleted while a version was being registered")
            # Read back after the UPDATE, so it carries the counter value this transaction wrote.
            session.refresh(model)
            found = session.scalar(
                select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.digest == digest))
            if found is not None:
                raise _ExistingVersion(convert.version_out(new.model, found))
            number = model.last_version if new.number is None else self._keep_number(session, model, new, digest)
            if admit is not None:
                admit(queries.storage_bytes(session, project), queries.new_bytes(session, project, new.files))
            row = convert.version_row(new, model_id=model.id, number=number, digest=digest,
                                      size=size, created_at=now)
            session.add(row)
            session.flush()
            return convert.version_out(new.model, row, aliases=())

        try:
            return self._write_retrying(work, f"registering a version of {new.model!r}"), True
        except _ExistingVersion as existing:
            return existing.version, False

    @staticmethod
    def _keep_number(session: Session, model: ModelRow, new: NewVersion, digest: str) -> int:
        """``new.number`` if no other version has it; the counter (already moved on by one) then
        stands at the highest number given out, so the next version takes the one after it."""
        number = cast("int", new.number)
        taken = session.scalar(
            select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == number))
        if taken is not None:
            raise Conflict(
                f"{new.model}:{number} exists here already with other content (digest {taken.digest}), so the "
                f"version with digest {digest} cannot keep its number {number}: delete the local one "
                f"(pier models delete {new.model}:{number}) or pull into another PIER_HOME",
                details={"model": new.model, "version": number, "local_digest": taken.digest, "digest": digest})
        model.last_version = max(model.last_version - 1, number)
        return number

    def _lock_project_storage(self, session: Session, project: str) -> None:
        if self._is_postgres:  # released at commit or rollback
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": storage_lock_key(project)})

    @guarded
    def get_version(self, name: str, version: int, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)
        with self._read() as session:
            model = queries.model_row(session, project, name)
            return convert.version_out(name, queries.version_row(session, model, version))

    @guarded
    def list_versions(self, name: str, *, project: str = DEFAULT_PROJECT) -> list[ModelVersion]:
        validate_name(name)
        with self._read() as session:
            model = queries.model_row(session, project, name)
            rows = session.scalars(
                select(VersionRow).where(VersionRow.model_id == model.id).order_by(VersionRow.version)).all()
            return [convert.version_out(name, r) for r in rows]

    @guarded
    def resolve(self, ref: ModelRef, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(ref.name)
        with self._read() as session:
            model = queries.model_row(session, project, ref.name)
            if ref.version is not None:
                return convert.version_out(ref.name, queries.version_row(session, model, ref.version))
            if ref.alias is not None:
                alias = queries.alias_row(session, model, validate_alias(ref.alias))
                row = session.get_one(VersionRow, alias.version_id)
                return convert.version_out(ref.name, row)
            latest = session.scalar(select(VersionRow).where(VersionRow.model_id == model.id)
                                    .order_by(VersionRow.version.desc()).limit(1))
            if latest is None:
                raise NotFound(f"model {ref.name!r} has no versions yet", details={"model": ref.name})
            return convert.version_out(ref.name, latest)

    @guarded
    def delete_version(self, name: str, version: int, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)
        with self._write() as session:
            model = queries.model_row(session, project, name)
            row = queries.version_row(session, model, version)
            out = convert.version_out(name, row)
            # Files, tags and the aliases pointing here go with it (ON DELETE CASCADE).
            session.execute(delete(VersionRow).where(VersionRow.id == row.id))
            model.updated_at = self._clock.now()
            return out

    # -- aliases ----------------------------------------------------------------------------------

    @guarded
    def set_alias(self, name: str, alias: str, version: int, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)
        validate_alias(alias)

        def work(session: Session) -> ModelVersion:
            model = queries.model_row(session, project, name)
            target = queries.version_row(session, model, version)
            row = session.scalar(
                select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias))
            if row is None:
                session.add(AliasRow(model_id=model.id, alias=alias, version_id=target.id))
            else:
                row.version_id = target.id
            model.updated_at = self._clock.now()
            session.flush()
            session.expire(target, ["aliases"])
            return convert.version_out(name, target)

        return self._write_retrying(work, f"setting alias {alias!r} of {name!r}")

    @guarded
    def delete_alias(self, name: str, alias: str, *, project: str = DEFAULT_PROJECT) -> None:
        validate_name(name)
        validate_alias(alias)
        with self._write() as session:
            model = queries.model_row(session, project, name)
            session.delete(queries.alias_row(session, model, alias))
            model.updated_at = self._clock.now()

    # -- tags -------------------------------------------------------------------------------------

    @guarded
    def set_model_tag(self, name: str, key: str, value: str, *, project: str = DEFAULT_PROJECT) -> Model:
        validate_name(name)
        validate_tag_key(key)

        def work(session: Session) -> Model:
            model = queries.model_row(session, project, name)
            row = session.get(ModelTagRow, (model.id, key))
            if row is None:
                session.add(ModelTagRow(model_id=model.id, key=key, value=value))
            else:
                row.value = value
            model.updated_at = self._clock.now()
            session.flush()
            session.expire(model, ["tags"])
            return queries.model_out(session, model)

        return self._write_retrying(work, f"tagging model {name!r}")

    @guarded
    def delete_model_tag(self, name: str, key: str, *, project: str = DEFAULT_PROJECT) -> Model:
        validate_name(name)
        validate_tag_key(key)
        with self._write() as session:
            model = queries.model_row(session, project, name)
            row = session.get(ModelTagRow, (model.id, key))
            if row is None:
                raise NotFound(f"model {name!r} has no tag {key!r}", details={"model": name, "tag": key})
            session.delete(row)
            model.updated_at = self._clock.now()
            session.flush()
            session.expire(model, ["tags"])
            return queries.model_out(session, model)

    @guarded
    def set_version_tag(self, name: str, version: int, key: str, value: str, *,
                        project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)
        validate_tag_key(key)

        def work(session: Session) -> ModelVersion:
            target = queries.version_row(session, queries.model_row(session, project, name), version)
            row = session.get(VersionTagRow, (target.id, key))
            if row is None:
                session.add(VersionTagRow(version_id=target.id, key=key, value=value))
            else:
                row.value = value
            session.flush()
            session.expire(target, ["tags"])
            return convert.version_out(name, target)

        return self._write_retrying(work, f"tagging {name}:{version}")

    @guarded
    def set_version_image(self, name: str, version: int, image: str | None, *,
                          project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)

        def work(session: Session) -> ModelVersion:
            target = queries.version_row(session, queries.model_row(session, project, name), version)
            target.image = image
            session.flush()
            return convert.version_out(name, target)

        return self._write_retrying(work, f"recording the image of {name}:{version}")

    @guarded
    def delete_version_tag(self, name: str, version: int, key: str, *,
                           project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)
        validate_tag_key(key)
        with self._write() as session:
            target = queries.version_row(session, queries.model_row(session, project, name), version)
            row = session.get(VersionTagRow, (target.id, key))
            if row is None:
                raise NotFound(f"version {name}:{version} has no tag {key!r}",
                               details={"model": name, "version": version, "tag": key})
            session.delete(row)
            session.flush()
            session.expire(target, ["tags"])
            return convert.version_out(name, target)

    @guarded
    def set_version_environment(self, name: str, version: int, environment: dict[str, Any], *,
                                project: str = DEFAULT_PROJECT) -> ModelVersion:
        validate_name(name)
        convert.check_json("environment", environment)

        def work(session: Session) -> ModelVersion:
            target = queries.version_row(session, queries.model_row(session, project, name), version)
            target.environment = dict(environment)
            session.flush()
            return convert.version_out(name, target)

        return self._write_retrying(work, f"re-locking {name}:{version}")

    # -- blobs ------------------------------------------------------------------------------------

    @guarded
    def storage_bytes(self, project: str) -> int:
        with self._read() as session:
            return queries.storage_bytes(session, project)

    @guarded
    def count_blob_references(self, digest: str) -> int:
        validate_digest(digest)
        with self._read() as session:
            count = session.scalar(select(func.count()).select_from(VersionFileRow)
                                   .where(VersionFileRow.digest == digest))
            return int(count or 0)
