"""Rows to frozen domain objects and back, plus the checks a new version passes before insert.

Pure functions over ``tables`` rows; ``SqlMetadataStore`` is the only caller.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from modelpier.errors import InvalidInput
from modelpier.registry.digests import validate_digest
from modelpier.registry.domain import FileEntry, Flavor, Model, ModelVersion, NewVersion
from modelpier.registry.sql.tables import ModelRow, VersionFileRow, VersionRow, VersionTagRow
from modelpier.spec.names import validate_name, validate_tag_key
from modelpier.spec.signature import Signature

MAX_PATH_LEN = 1024


def model_out(row: ModelRow, latest: int | None, count: int, aliases: dict[str, int]) -> Model:
    return Model(
        name=row.name,
        description=row.description,
        tags={t.key: t.value for t in row.tags},
        created_at=row.created_at,
        updated_at=row.updated_at,
        latest_version=latest,
        aliases=dict(sorted(aliases.items())),
        version_count=int(count),
        project=row.project,
    )


def version_out(model: str, row: VersionRow, *, aliases: tuple[str, ...] | None = None) -> ModelVersion:
    return ModelVersion(
        model=model,
        version=row.version,
        flavor=Flavor(row.flavor),
        digest=row.digest,
        size=row.size,
        files=tuple(FileEntry(path=f.path, digest=f.digest, size=f.size)
                    for f in sorted(row.files, key=lambda f: f.path)),
        signature=Signature.model_validate(row.signature) if row.signature is not None else None,
        input_example=row.input_example,
        metrics=dict(row.metrics),
        params=dict(row.params),
        tags={t.key: t.value for t in row.tags},
        description=row.description,
        environment=dict(row.environment),
        created_by=row.created_by,
        created_at=row.created_at,
        source=row.source,
        aliases=aliases if aliases is not None else tuple(sorted(a.alias for a in row.aliases)),
        image=row.image,
    )


def version_row(new: NewVersion, *, model_id: int, number: int, digest: str, size: int,
                created_at: datetime) -> VersionRow:
    return VersionRow(
        model_id=model_id,
        version=number,
        flavor=Flavor(new.flavor).value,
        digest=digest,
        size=size,
        signature=new.signature.model_dump(mode="json") if new.signature is not None else None,
        input_example=new.input_example,
        metrics={k: float(v) for k, v in new.metrics.items()},
        params=dict(new.params),
        description=new.description,
        environment=dict(new.environment),
        created_by=new.created_by,
        created_at=created_at,
        source=new.source,
        files=[VersionFileRow(path=f.path, digest=f.digest, size=f.size) for f in new.files],
        tags=[VersionTagRow(key=k, value=v) for k, v in new.tags.items()],
    )


def validate_new_version(new: NewVersion) -> None:
    """Raise ``InvalidInput`` (or ``InvalidName``) naming the first thing wrong with ``new``."""
    validate_name(new.model)
    try:
        Flavor(new.flavor)
    except ValueError:
        known = ", ".join(f.value for f in Flavor)
        raise InvalidInput(f"flavor {new.flavor!r} is not one of {known}") from None
    seen: set[str] = set()
    for entry in new.files:
        _validate_path(entry.path)
        if entry.path in seen:
            raise InvalidInput(f"file path {entry.path!r} appears twice in the version's files")
        seen.add(entry.path)
        validate_digest(entry.digest)
        if not isinstance(entry.size, int) or entry.size < 0:
            raise InvalidInput(f"file {entry.path!r}: size {entry.size!r} is not a byte count")
    for key in new.tags:
        validate_tag_key(key)
    for name, value in new.metrics.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"metric {name!r} is {value!r}; metrics must be finite numbers")
    _require_json("params", new.params)
    _require_json("environment", new.environment)
    _require_json("input_example", new.input_example)


def _validate_path(path: str) -> None:
    pure = PurePosixPath(path)
    if (not path or len(path) > MAX_PATH_LEN or pure.is_absolute() or ".." in pure.parts
            or "\\" in path or "\0" in path):
        raise InvalidInput(
            f"file path {path!r} is not valid: use a relative POSIX path without '..' "
            f"(at most {MAX_PATH_LEN} characters)")


def check_json(what: str, value: Any) -> None:
    """Refuse a value the JSON columns cannot hold, naming it (``InvalidInput``)."""
    _require_json(what, value)


def _require_json(what: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} is not JSON-serializable (finite numbers, strings, lists, dicts): {exc}") from None
