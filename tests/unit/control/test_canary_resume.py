"""decide_resume: what a restarted control plane does with a canary run that was not done."""

from __future__ import annotations

import pytest

from modelpier.control.canary.resume import (
    Adopt,
    Continue,
    Finish,
    LatestRevision,
    Redo,
    ResumeDecision,
    decide_resume,
    judge_replaced,
)
from modelpier.control.canary.state import PendingApply
from modelpier.spec.revision import RevisionKind

STEP = PendingApply("step", cause="canary iris:2 at 50%", step=1, weight=50)
START = PendingApply("start", cause="canary iris:2 at 10%", weight=10)
PROMOTE = PendingApply("promote", cause="canary iris:2 promoted")
ROLLBACK = PendingApply("rollback", phase="rolled-back", message="canary failed at 10% on error rate")


def ours(number: int, cause: str, kind: RevisionKind = RevisionKind.CANARY_STEP) -> LatestRevision:
    return LatestRevision(number, "alice", kind, cause)


@pytest.mark.parametrize(("pending", "latest", "expected"), [
    # Nothing pending, the run's revision is still the latest: carry on.
    (None, ours(7, "canary iris:2 at 10%"), Continue()),
    # A pending apply that never happened: the latest is still the one it was made from.
    (STEP, ours(7, "canary iris:2 at 10%"), Redo()),
    (START, LatestRevision(7, "bob", RevisionKind.APPLIED, "applied"), Redo()),
    (PROMOTE, ours(7, "canary iris:2 at 50%"), Redo()),
    # It happened (the next revision, its cause, its author): adopt it.
    (STEP, ours(8, "canary iris:2 at 50%"), Adopt(8)),
    (START, ours(8, "canary iris:2 at 10%"), Adopt(8)),
    (PROMOTE, ours(8, "canary iris:2 promoted", RevisionKind.CANARY_PROMOTE), Adopt(8)),
])
def test_carry_on_redo_or_adopt(pending: PendingApply | None, latest: LatestRevision, expected: ResumeDecision) -> None:
    assert decide_resume(7, "alice", pending, latest) == expected


@pytest.mark.parametrize(("pending", "latest"), [
    (None, LatestRevision(8, "bob", RevisionKind.APPLIED, "applied")),  # someone applied meanwhile
    (STEP, LatestRevision(8, "bob", RevisionKind.CANARY_STEP, "canary iris:2 at 50%")),  # right cause, other author
    (STEP, ours(8, "canary iris:2 at 90%")),                         # the right author, another cause
    (STEP, ours(9, "canary iris:2 at 50%")),                         # not the next revision
    (STEP, LatestRevision(9, "modelpier", RevisionKind.ALIAS_FOLLOW,
                    "alias iris:production moved from 1 to 2")),
])
def test_someone_elses_revision_stops_the_canary_and_leaves_it(pending: PendingApply | None,
                                                               latest: LatestRevision) -> None:
    decision = decide_resume(7, "alice", pending, latest)
    assert isinstance(decision, Finish)
    assert (decision.phase, decision.roll_back) == ("stopped", False)
    assert f"revision {latest.number} by {latest.created_by}" in decision.message
    assert "replaced the canary's revision 7" in decision.message


def test_the_reconcilers_automatic_rollback_fails_the_canary_which_is_rolled_back() -> None:
    rolled = LatestRevision(8, "reconciler", RevisionKind.AUTO_ROLLBACK,
                            "automatic rollback to revision 6: revision 7 never became ready")
    for pending in (None, STEP):
        decision = decide_resume(7, "alice", pending, rolled)
        assert decision == Finish("failed", f"revision 7 never became ready: {rolled.cause}", roll_back=True)
    assert judge_replaced(7, rolled) == decide_resume(7, "alice", None, rolled)


def test_only_the_kind_tells_an_automatic_rollback_not_the_words() -> None:
    # A user's rollback whose cause reads like the reconciler's stops the canary and leaves it as it is.
    user = LatestRevision(8, "reconciler", RevisionKind.ROLLBACK, "automatic rollback, as asked")
    decision = decide_resume(7, "alice", None, user)
    assert isinstance(decision, Finish)
    assert (decision.phase, decision.roll_back) == ("stopped", False)


def test_a_pending_rollback_is_finished_whatever_the_deployment_became() -> None:
    for latest in (ours(7, "canary iris:2 at 10%"),
                   ours(8, "canary iris:2 rolled back: ...", RevisionKind.CANARY_ROLLBACK),
                   LatestRevision(9, "bob", RevisionKind.APPLIED, "applied")):
        assert decide_resume(7, "alice", ROLLBACK, latest) == \
            Finish("rolled-back", "canary failed at 10% on error rate", roll_back=True)


@pytest.mark.parametrize("pending", [None, STEP, ROLLBACK])
def test_a_deployment_gone_or_being_deleted_stops_the_canary_untouched(pending: PendingApply | None) -> None:
    gone = decide_resume(7, "alice", pending, None)
    assert isinstance(gone, Finish)
    assert (gone.phase, gone.roll_back) == ("stopped", False)
    assert "deleted" in gone.message
    deleting = decide_resume(7, "alice", pending, ours(7, "canary iris:2 at 10%"), deleting=True)
    assert deleting == Finish("stopped", "the deployment is being deleted", roll_back=False)
