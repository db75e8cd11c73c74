"""Lookups inside an open session, shared by ``SqlMetadataStore``'s methods.

Each either returns rows / domain objects or raises ``NotFound`` with a message naming what is
missing and what exists instead ("model 'iris' has no version 7; versions: 1, 2").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from modelpier.errors import InvalidInput, NotFound
from modelpier.registry.domain import FileEntry, Model
from modelpier.registry.sql import convert
from modelpier.registry.sql.tables import DEFAULT_PROJECT, AliasRow, ModelRow, VersionFileRow, VersionRow


def model_row(session: Session, project: str, name: str) -> ModelRow:
    """The model ``name`` of ``project``; a model of another project is as absent as a missing one."""
    row = session.scalar(select(ModelRow).where(ModelRow.project == project, ModelRow.name == name))
    if row is None:
        raise NotFound(missing_model(project, name), details={"model": name})
    return row


def missing_model(project: str, name: str) -> str:
    where = "" if project == DEFAULT_PROJECT else f" in project {project!r}"
    return f"model {name!r} does not exist{where}"


def version_row(session: Session, model: ModelRow, version: int) -> VersionRow:
    if not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version {version!r} is not valid: versions are numbered from 1")
    row = session.scalar(
        select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == version))
    if row is None:
        numbers = session.scalars(select(VersionRow.version).where(VersionRow.model_id == model.id)
                                  .order_by(VersionRow.version)).all()
        known = f"versions: {', '.join(map(str, numbers))}" if numbers else "it has no versions yet"
        raise NotFound(f"model {model.name!r} has no version {version}; {known}",
                       details={"model": model.name, "version": version})
    return row


def alias_row(session: Session, model: ModelRow, alias: str) -> AliasRow:
    row = session.scalar(select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias))
    if row is None:
        names = session.scalars(select(AliasRow.alias).where(AliasRow.model_id == model.id)
                                .order_by(AliasRow.alias)).all()
        known = f"aliases: {', '.join(names)}" if names else "it has no aliases"
        raise NotFound(f"model {model.name!r} has no alias {alias!r}; {known}",
                       details={"model": model.name, "alias": alias})
    return row


def model_out(session: Session, row: ModelRow) -> Model:
    return models_out(session, [row])[0]


def models_out(session: Session, rows: Sequence[ModelRow]) -> list[Model]:
    """Domain models for ``rows`` with their latest version, version count and aliases (3 queries)."""
    ids = [r.id for r in rows]
    if not ids:
        return []
    stats = {mid: (latest, count) for mid, latest, count in session.execute(
        select(VersionRow.model_id, func.max(VersionRow.version), func.count(VersionRow.id))
        .where(VersionRow.model_id.in_(ids)).group_by(VersionRow.model_id))}
    aliases: dict[int, dict[str, int]] = {}
    for mid, alias, number in session.execute(
            select(AliasRow.model_id, AliasRow.alias, VersionRow.version)
            .join(VersionRow, AliasRow.version_id == VersionRow.id)
            .where(AliasRow.model_id.in_(ids))):
        aliases.setdefault(mid, {})[alias] = number
    out = []
    for row in rows:
        latest, count = stats.get(row.id, (None, 0))
        out.append(convert.model_out(row, latest, count, aliases.get(row.id, {})))
    return out


def _project_files(project: str, *columns: Any) -> Select[Any]:
    """``columns`` of the files of every version of the project's models."""
    return (select(*columns).select_from(VersionFileRow)
            .join(VersionRow, VersionFileRow.version_id == VersionRow.id)
            .join(ModelRow, VersionRow.model_id == ModelRow.id)
            .where(ModelRow.project == project))


def storage_bytes(session: Session, project: str) -> int:
    """What the project's versions store, each distinct blob counted once (blobs are deduplicated:
    a file shared by several versions, or pushed again, takes its bytes once)."""
    blobs = _project_files(project, VersionFileRow.digest, func.max(VersionFileRow.size).label("size")) \
        .group_by(VersionFileRow.digest).subquery()
    return int(session.scalar(select(func.coalesce(func.sum(blobs.c.size), 0))) or 0)


def new_bytes(session: Session, project: str, files: Iterable[FileEntry]) -> int:
    """The bytes ``files`` add to the project's storage: blobs none of its versions holds yet."""
    sizes = {f.digest: f.size for f in files}
    if not sizes:
        return 0
    held = set(session.scalars(_project_files(project, VersionFileRow.digest)
                               .where(VersionFileRow.digest.in_(sizes)).distinct()))
    return sum(size for digest, size in sizes.items() if digest not in held)
