"""``decide_resume``: what a restarted control plane does with a canary run it finds not done. Pure.

Inputs: the stored run (the last revision it made, who started it, the apply it had written down
as pending, if any) and the deployment as it is now (its latest revision, or ``None`` when the
deployment is gone). The answer is one of

* ``Continue``: the latest revision is the run's: carry on from the phase it was in;
* ``Redo``: the pending apply never happened (the latest revision is still the one before it): make it;
* ``Adopt``: the pending apply did happen (the next revision is the run's, by its cause and author)
  but the process died before writing its number down: take it and carry on;
* ``Finish``: end the run, rolling the canary back or not: the deployment is gone or being deleted
  (stopped), a pending rollback was cut short (finish it), or the deployment changed meanwhile.

``judge_replaced`` is the rule for a deployment changed by someone else, shared with the running
driver: a revision made by anyone else stops the canary and leaves that revision as it is; only the
reconciler's automatic rollback of a canary revision that never got ready fails the canary, which is
then rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelpier.control.canary.state import EndPhase, PendingApply
from modelpier.spec.revision import RevisionKind


@dataclass(frozen=True, slots=True)
class LatestRevision:
    """The facts about a deployment's latest revision the decision reads."""

    number: int
    created_by: str
    kind: RevisionKind
    cause: str


@dataclass(frozen=True, slots=True)
class Continue:
    kind: Literal["continue"] = "continue"


@dataclass(frozen=True, slots=True)
class Redo:
    kind: Literal["redo"] = "redo"


@dataclass(frozen=True, slots=True)
class Adopt:
    revision: int
    kind: Literal["adopt"] = "adopt"


@dataclass(frozen=True, slots=True)
class Finish:
    phase: EndPhase
    message: str
    roll_back: bool
    kind: Literal["finish"] = "finish"


ResumeDecision = Continue | Redo | Adopt | Finish


def judge_replaced(revision: int, latest: LatestRevision) -> Finish:
    """The run's ``revision`` is no longer the latest: why the canary ends."""
    if latest.kind is RevisionKind.AUTO_ROLLBACK:
        return Finish("failed", f"revision {revision} never became ready: {latest.cause}", roll_back=True)
    return Finish("stopped", f"revision {latest.number} by {latest.created_by} ({latest.cause}) replaced the "
                             f"canary's revision {revision}; the canary stops and leaves it as it is", roll_back=False)


def decide_resume(revision: int, started_by: str, pending: PendingApply | None, latest: LatestRevision | None, *,
                  deleting: bool = False) -> ResumeDecision:
    """See the module docstring. ``revision`` is the last revision the run wrote down as its own."""
    if latest is None:
        return Finish("stopped", "the deployment was deleted while the control plane was down", roll_back=False)
    if deleting:
        return Finish("stopped", "the deployment is being deleted", roll_back=False)
    if pending is not None and pending.action == "rollback":
        # Removing the canary predictor from whatever the latest spec is, as the driver was doing; a
        # rollback that did land finds no canary predictor left and changes nothing.
        return Finish(pending.phase, pending.message, roll_back=True)
    if latest.number == revision:
        return Continue() if pending is None else Redo()
    if pending is not None and latest.number == revision + 1 and latest.cause == pending.cause \
            and latest.created_by == started_by:
        return Adopt(latest.number)
    return judge_replaced(revision, latest)
