"""Pure decisions over a deployment's revision history: rollback targets and alias moves.

No I/O: ``DeploymentService`` reads revisions and the registry, asks these functions what to do,
then writes. Unit-tested on their own (``tests/unit/control/test_history.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelpier.control.deployments.state import Revision
from modelpier.errors import Conflict, NotFound


def rollback_cause(number: int) -> str:
    return f"rollback to revision {number}"


def same_content(a: Revision, b: Revision) -> bool:
    """Whether two revisions would run the same thing (spec and resolved versions; not the cause)."""
    return a.spec == b.spec and a.resolved == b.resolved


def diff_resolved(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """Predictors whose resolved version differs: ``{predictor: (old, new)}``, None where absent."""
    return {p: (old.get(p), new.get(p)) for p in sorted(set(old) | set(new)) if old.get(p) != new.get(p)}


def choose_rollback_target(revisions: Sequence[Revision], to_revision: int | None) -> Revision:
    """The revision a rollback re-applies.

    ``to_revision`` picks one by number. ``None`` means the previous one, as ``kubectl rollout
    undo``: the newest revision before the latest whose content differs from the latest's, so
    undoing twice toggles between two revisions instead of re-applying what already runs.
    """
    if not revisions:
        raise NotFound("the deployment has no revisions")
    latest = revisions[-1]
    if to_revision is not None:
        for revision in revisions:
            if revision.number == to_revision:
                return revision
        known = ", ".join(str(r.number) for r in revisions)
        raise NotFound(f"deployment {latest.project}/{latest.deployment} has no revision {to_revision} "
                       f"(it has {known})", details={"revision": to_revision})
    for revision in reversed(revisions[:-1]):
        if not same_content(revision, latest):
            return revision
    raise Conflict(f"deployment {latest.project}/{latest.deployment} has no earlier revision to roll back to "
                   f"(revision {latest.number} is its only content)")


@dataclass(frozen=True, slots=True)
class AliasMove:
    """A predictor following ``model:alias`` whose alias now points elsewhere."""

    predictor: str
    reference: str  # "iris:production"
    old: str | None  # "iris:3"
    new: str  # "iris:4"

    def describe(self) -> str:
        def number(ref: str | None) -> str:
            return "nothing" if ref is None else ref.rpartition(":")[2]

        return f"alias {self.reference} moved from {number(self.old)} to {number(self.new)}"


def alias_baseline(history: Sequence[Revision]) -> dict[str, str]:
    """Where each following predictor's alias pointed when it was last looked at.

    That is the resolved map of the newest revision that resolved aliases: applies and alias refreshes
    do, rollbacks and a canary's steps re-use old versions (``RevisionKind.pins_versions``). So after a
    rollback the alias counts as moved only when it moves again, and a rollback is not undone by the
    next alias poll, nor by a canary started on top of it.
    """
    for revision in reversed(history):
        if not revision.kind.pins_versions:
            return dict(revision.resolved)
    return dict(history[0].resolved) if history else {}


def plan_alias_moves(latest: Revision, baseline: Mapping[str, str], current: Mapping[str, str]) -> list[AliasMove]:
    """The moves to roll out: ``current`` maps each following predictor to its alias's version now."""
    moves = []
    for predictor in latest.spec.predictors:
        now = current.get(predictor.name)
        if not predictor.follow_alias or predictor.model is None or now is None:
            continue
        if now != baseline.get(predictor.name) and now != latest.resolved.get(predictor.name):
            moves.append(AliasMove(predictor.name, predictor.model, latest.resolved.get(predictor.name), now))
    return moves


def alias_moves_cause(moves: Sequence[AliasMove]) -> str:
    """``alias iris:production moved from 3 to 4`` (several joined with "; ")."""
    return "; ".join(dict.fromkeys(m.describe() for m in moves))
