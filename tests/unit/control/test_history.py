"""Pure decisions over revision history: rollback targets, resolved diffs, alias moves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelpier.control.deployments.history import (
    AliasMove,
    alias_baseline,
    alias_moves_cause,
    choose_rollback_target,
    diff_resolved,
    plan_alias_moves,
)
from modelpier.control.deployments.state import Revision
from modelpier.errors import Conflict, NotFound
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind

FOLLOW = ModelDeploymentSpec.model_validate({"predictors": [{"model": "iris:production", "followAlias": True}]})
RB = RevisionKind.ROLLBACK
PINNED = ModelDeploymentSpec.model_validate({"predictors": [{"model": "iris:production"}]})


def rev(number: int, version: int, *, kind: RevisionKind = RevisionKind.APPLIED,
        spec: ModelDeploymentSpec = FOLLOW) -> Revision:
    return Revision(project="default", deployment="iris", number=number, spec=spec,
                    resolved={"main": f"iris:{version}"}, created_at=datetime(2026, 1, 1, tzinfo=UTC),
                    created_by="t", kind=kind, cause=str(kind))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({"a": "m:1"}, {"a": "m:1"}, {}),
    ({"a": "m:1"}, {"a": "m:2"}, {"a": ("m:1", "m:2")}),
    ({"a": "m:1"}, {"a": "m:1", "b": "n:1"}, {"b": (None, "n:1")}),
    ({"a": "m:1", "b": "n:1"}, {"a": "m:1"}, {"b": ("n:1", None)}),
])
def test_diff_resolved(old: dict[str, str], new: dict[str, str], expected: dict[str, object]) -> None:
    assert diff_resolved(old, new) == expected


@pytest.mark.parametrize(("history", "to", "expected"), [
    ([rev(1, 1), rev(2, 2)], None, 1),
    ([rev(1, 1), rev(2, 2), rev(3, 3)], None, 2),
    ([rev(1, 1), rev(2, 2), rev(3, 1, kind=RB)], None, 2),  # undo twice toggles
    ([rev(1, 1), rev(2, 2), rev(3, 2)], None, 1),  # skips revisions with the same content as the latest
    ([rev(1, 1), rev(2, 2), rev(3, 3)], 1, 1),
    ([rev(1, 1), rev(2, 2)], 2, 2),  # the latest itself: the apply that follows is a no-op
])
def test_choose_rollback_target(history: list[Revision], to: int | None, expected: int) -> None:
    assert choose_rollback_target(history, to).number == expected


def test_rollback_target_errors_name_what_is_missing() -> None:
    with pytest.raises(NotFound, match=r"no revision 7 \(it has 1, 2\)"):
        choose_rollback_target([rev(1, 1), rev(2, 2)], 7)
    with pytest.raises(Conflict, match="no earlier revision"):
        choose_rollback_target([rev(1, 1)], None)
    with pytest.raises(Conflict, match="no earlier revision"):
        choose_rollback_target([rev(1, 1), rev(2, 1)], None)
    with pytest.raises(NotFound):
        choose_rollback_target([], None)


def test_alias_baseline_skips_rollbacks() -> None:
    assert alias_baseline([rev(1, 3)]) == {"main": "iris:3"}
    assert alias_baseline([rev(1, 3), rev(2, 4), rev(3, 3, kind=RB)]) == {"main": "iris:4"}
    assert alias_baseline([rev(1, 3, kind=RevisionKind.AUTO_ROLLBACK)]) == {"main": "iris:3"}
    assert alias_baseline([]) == {}


def test_alias_baseline_skips_a_canarys_steps_which_pin_versions() -> None:
    undone = [rev(1, 3), rev(2, 4), rev(3, 3, kind=RB)]
    assert alias_baseline([*undone, rev(4, 3, kind=RevisionKind.CANARY_STEP)]) == {"main": "iris:4"}
    assert alias_baseline([*undone, rev(4, 3, kind=RevisionKind.CANARY_STEP),
                           rev(5, 3, kind=RevisionKind.CANARY_ROLLBACK)]) == {"main": "iris:4"}
    assert alias_baseline([rev(1, 3), rev(2, 7, kind=RevisionKind.CANARY_PROMOTE)]) == {"main": "iris:7"}


@pytest.mark.parametrize(("kind", "expected"), [
    (RevisionKind.CANARY_STEP, True), (RevisionKind.ROLLBACK, True), (RevisionKind.AUTO_ROLLBACK, True),
    (RevisionKind.CANARY_ROLLBACK, True), (RevisionKind.CANARY_PROMOTE, False), (RevisionKind.APPLIED, False),
    (RevisionKind.ALIAS_FOLLOW, False)])
def test_pins_versions(kind: RevisionKind, expected: bool) -> None:
    assert kind.pins_versions is expected


@pytest.mark.parametrize(("latest", "baseline", "current", "moved"), [
    (rev(1, 3), {"main": "iris:3"}, {"main": "iris:3"}, None),  # nothing moved
    (rev(1, 3), {"main": "iris:3"}, {"main": "iris:4"}, ("iris:3", "iris:4")),
    # after a rollback to 3 while the alias is at 4: hold, until the alias moves again
    (rev(3, 3, kind=RB), {"main": "iris:4"}, {"main": "iris:4"}, None),
    (rev(3, 3, kind=RB), {"main": "iris:4"}, {"main": "iris:5"}, ("iris:3", "iris:5")),
    # the alias moved back to what runs: nothing to roll out
    (rev(3, 3, kind=RB), {"main": "iris:4"}, {"main": "iris:3"}, None),
    (rev(1, 3, spec=PINNED), {"main": "iris:3"}, {"main": "iris:4"}, None),  # not following
])
def test_plan_alias_moves(latest: Revision, baseline: dict[str, str], current: dict[str, str],
                          moved: tuple[str, str] | None) -> None:
    moves = plan_alias_moves(latest, baseline, current)
    if moved is None:
        assert moves == []
    else:
        assert moves == [AliasMove("main", "iris:production", moved[0], moved[1])]


def test_alias_moves_cause_reads_like_a_sentence() -> None:
    moves = [AliasMove("main", "iris:production", "iris:3", "iris:4"),
             AliasMove("b", "wine:staging", None, "wine:1")]
    assert alias_moves_cause(moves) == ("alias iris:production moved from 3 to 4; "
                                        "alias wine:staging moved from nothing to 1")
