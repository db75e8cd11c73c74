"""The models list's filters: name, project, flavor, alias, tag (key or key=value)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelpier.dashboard.catalog import ModelFilter, ModelRow, filter_choices, filter_models
from modelpier.registry.domain import Flavor
from modelpier.registry.wire import ModelBody, VersionBody

T = datetime(2026, 1, 1, tzinfo=UTC)


def row(project: str, name: str, flavor: str | None = "sklearn", aliases: dict[str, int] | None = None,
        tags: dict[str, str] | None = None) -> ModelRow:
    return ModelRow(project=project, name=name, description="", latest_version=1, flavor=flavor,
                    aliases=aliases or {}, tags=tags or {}, version_count=1, updated_at=T)


ROWS = [
    row("default", "iris", aliases={"production": 1}, tags={"dataset": "iris", "example": "true"}),
    row("acme", "fraud", flavor="xgboost", aliases={"staging": 2}, tags={"team": "risk"}),
    row("acme", "churn", flavor="onnx"),
    row("default", "iris-big", flavor=None),
]


@pytest.mark.parametrize(("query", "names"), [
    ({}, ["churn", "fraud", "iris", "iris-big"]),
    ({"q": "IRIS"}, ["iris", "iris-big"]),
    ({"project": "acme"}, ["churn", "fraud"]),
    ({"flavor": "sklearn"}, ["iris"]),
    ({"alias": "production"}, ["iris"]),
    ({"alias": "nope"}, []),
    ({"tag": "team"}, ["fraud"]),
    ({"tag": "dataset=iris"}, ["iris"]),
    ({"tag": "dataset=wine"}, []),
    ({"q": "fr", "project": "acme", "flavor": "xgboost", "alias": "staging", "tag": "team=risk"}, ["fraud"]),
    ({"q": "fr", "project": "default"}, []),
])
def test_filters_combine(query: dict[str, str], names: list[str]) -> None:
    assert [r.name for r in filter_models(ROWS, ModelFilter.of(query))] == names


def test_a_filter_knows_whether_it_is_active_and_ignores_blanks() -> None:
    assert not ModelFilter.of({"q": "  ", "tag": ""}).active
    assert ModelFilter.of({"alias": " production "}) == ModelFilter(alias="production")


def test_choices_come_from_the_rows() -> None:
    choices = filter_choices(ROWS, ["default", "acme", "empty"])
    assert choices.projects == ["acme", "default", "empty"]
    assert choices.flavors == ["onnx", "sklearn", "xgboost"]
    assert choices.aliases == ["production", "staging"]
    assert "team=risk" in choices.tags


def test_a_row_merges_model_and_latest_version_tags() -> None:
    model = ModelBody(name="iris", description="d", tags={"owner": "ml"}, created_at=T, updated_at=T,
                      latest_version=1, aliases={"production": 1}, version_count=1)
    version = VersionBody(model="iris", version=1, ref="iris:1", flavor=Flavor.SKLEARN, digest="sha256:" + "0" * 64,
                          size=1, files=[], signature=None, input_example=None, metrics={}, params={},
                          tags={"dataset": "iris"}, description="", environment={}, created_by="me", created_at=T,
                          source=None, aliases=["production"])
    made = ModelRow.of("default", model, version)
    assert (made.flavor, made.tags) == ("sklearn", {"owner": "ml", "dataset": "iris"})
    assert ModelRow.of("default", model, None).flavor is None
