"""``pier deploy REF``'s plan: new deployment, only the model changed, or refused (pure)."""

from __future__ import annotations

import re

import pytest

from modelpier.cli.deploy_ref import plan_ref_deploy
from modelpier.errors import Conflict
from modelpier.spec.deployment import ModelDeploymentSpec, parse_deployment_spec


def spec(*predictors: dict[str, object]) -> ModelDeploymentSpec:
    return parse_deployment_spec({"predictors": list(predictors), "cache": {"ttlSeconds": 5}})


FOLLOWING = {"name": "main", "model": "iris:production", "followAlias": True, "replicas": 2}


def plan(existing: ModelDeploymentSpec | None, ref: str = "iris:3", *, replicas: int | None = None,
         follow: bool = False, replace: bool = False, canary: bool = False) -> tuple[dict[str, object], list[str]]:
    planned = plan_ref_deploy(ref, "iris", None, existing, replicas=replicas, follow_alias=follow, replace=replace,
                              canary_running=canary)
    return planned.document.spec.predictors[0].model_dump(by_alias=True), list(planned.changes)


def test_a_new_deployment_gets_one_predictor() -> None:
    predictor, changes = plan(None, replicas=None)
    assert (predictor["model"], predictor["replicas"], changes) == ("iris:3", 1, [])


def test_only_the_model_changes_on_an_existing_deployment() -> None:
    predictor, changes = plan(spec(FOLLOWING), "iris:staging")
    assert (predictor["model"], predictor["replicas"], predictor["followAlias"]) == ("iris:staging", 2, True)
    assert changes == ["model iris:production -> iris:staging"]
    planned = plan_ref_deploy("iris:staging", "iris", None, spec(FOLLOWING), replicas=None, follow_alias=False,
                              replace=False, canary_running=False)
    cache = planned.document.spec.cache
    assert cache is not None
    assert cache.ttl_seconds == 5


def test_a_pinned_version_turns_follow_alias_off_and_says_so() -> None:
    predictor, changes = plan(spec(FOLLOWING), "iris:3", replicas=3)
    assert (predictor["followAlias"], predictor["replicas"]) == (False, 3)
    assert changes == ["model iris:production -> iris:3", "followAlias off (iris:3 names no alias)",
                       "replicas 2 -> 3"]


def test_the_same_model_changes_nothing() -> None:
    assert plan(spec(FOLLOWING), "iris:production") == (plan(spec(FOLLOWING), "iris:production")[0], [])


def test_replace_writes_a_fresh_spec() -> None:
    predictor, changes = plan(spec(FOLLOWING), replace=True)
    assert (predictor["replicas"], predictor["followAlias"], changes) == (1, False, ["replaced the whole spec"])


@pytest.mark.parametrize(("existing", "canary", "message"), [
    (spec(FOLLOWING), True, "a canary of iris is running"),
    (spec({**FOLLOWING, "weight": 90}, {"name": "b", "model": "iris:2", "weight": 10}), False,
     "deployment iris has 2 predictors (main, b)")])
def test_what_would_need_a_guess_is_refused(existing: ModelDeploymentSpec, canary: bool, message: str) -> None:
    with pytest.raises(Conflict, match=re.escape(message)) as raised:
        plan(existing, canary=canary)
    assert "--replace" in raised.value.message
