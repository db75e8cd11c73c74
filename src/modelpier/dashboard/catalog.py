"""The models list: one row per model across the caller's projects, and its filters. Pure.

The API lists models per project and knows a model's flavor and tags through its versions, so the
page reads each project's models and each model's latest version, builds ``ModelRow``s and filters
them here: by name (substring, also sent to the API as ``search``), project, flavor, alias and tag
(``key`` or ``key=value``, matched against the model's tags and its latest version's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from modelpier.registry.wire import ModelBody, VersionBody


@dataclass(frozen=True, slots=True)
class ModelRow:
    project: str
    name: str
    description: str
    latest_version: int | None
    flavor: str | None
    aliases: dict[str, int]
    tags: dict[str, str]
    version_count: int
    updated_at: datetime

    @classmethod
    def of(cls, project: str, model: ModelBody, latest: VersionBody | None) -> ModelRow:
        tags = {**model.tags, **(latest.tags if latest is not None else {})}
        return cls(project=project, name=model.name, description=model.description,
                   latest_version=model.latest_version, flavor=latest.flavor.value if latest is not None else None,
                   aliases=dict(model.aliases), tags=tags, version_count=model.version_count,
                   updated_at=model.updated_at)


@dataclass(frozen=True, slots=True)
class ModelFilter:
    search: str = ""
    project: str = ""
    flavor: str = ""
    alias: str = ""
    tag: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> ModelFilter:
        def value(key: str) -> str:
            return query.get(key, "").strip()[:200]  # a filter longer than this is not a filter

        return cls(search=value("q"), project=value("project"), flavor=value("flavor"), alias=value("alias"),
                   tag=value("tag"))

    @property
    def active(self) -> bool:
        return any((self.search, self.project, self.flavor, self.alias, self.tag))

    def matches(self, row: ModelRow) -> bool:
        if self.search and self.search.lower() not in row.name.lower():
            return False
        if self.project and row.project != self.project:
            return False
        if self.flavor and row.flavor != self.flavor:
            return False
        if self.alias and self.alias not in row.aliases:
            return False
        return not self.tag or _has_tag(row.tags, self.tag)


def _has_tag(tags: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    key, value = key.strip(), value.strip()
    if key not in tags:
        return False
    return not sep or tags[key] == value


def filter_models(rows: Iterable[ModelRow], wanted: ModelFilter) -> list[ModelRow]:
    """Rows that match, by project then name."""
    return sorted((r for r in rows if wanted.matches(r)), key=lambda r: (r.project, r.name))


@dataclass(frozen=True, slots=True)
class FilterChoices:
    """What the filter form offers: the values present in the unfiltered rows."""

    projects: list[str] = field(default_factory=list)
    flavors: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def filter_choices(rows: Iterable[ModelRow], projects: Iterable[str]) -> FilterChoices:
    rows = list(rows)
    return FilterChoices(
        projects=sorted(set(projects)),
        flavors=sorted({r.flavor for r in rows if r.flavor}),
        aliases=sorted({a for r in rows for a in r.aliases}),
        tags=sorted({f"{k}={v}" for r in rows for k, v in r.tags.items()}))
