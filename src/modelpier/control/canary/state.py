"""A progressive canary as data: its phases, what it judged, and the record the control store keeps.

``CanaryDriver`` writes a ``CanaryRecord`` through a ``CanaryStore`` at every transition (a step
applied, a verdict, promoted, rolled back, aborted, stopped, failed), so a restarted control plane
reads back the runs that were not done and resumes them (``canary_resume.decide_resume`` says how).
A revision the driver is about to make is written down first (``PendingApply``): after a crash the
resume can tell whether it was made. ``control/store`` implements the store over SQL
(``SqlCanaryStore``); implementations raise only ``modelpier.errors`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from modelpier.spec.traffic import PredictorTrafficWindow

CanaryPhase = Literal["progressing", "analyzing", "promoting", "promoted", "rolled-back", "aborted", "stopped",
                      "failed"]
EndPhase = Literal["promoted", "rolled-back", "aborted", "stopped", "failed"]
DONE: frozenset[str] = frozenset({"promoted", "rolled-back", "aborted", "stopped", "failed"})


@dataclass(frozen=True, slots=True)
class CanaryRequest:
    to: str
    steps: tuple[int, ...]
    interval_s: float
    predictor: str = "canary"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One interval's judgement, with both predictors' numbers over it."""

    weight: int
    verdict: str  # promote-step | hold | rollback
    reason: str
    stable: PredictorTrafficWindow
    canary: PredictorTrafficWindow
    at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class PendingApply:
    """A revision the driver is about to make, recorded before it makes it.

    ``start``/``step``: the canary moves to ``steps[step]`` (``weight``) in a revision with ``cause``;
    ``promote``: the stable predictor takes the canary's version, cause ``cause``; ``rollback``: the
    canary predictor is removed and the run ends in ``phase`` with ``message``.
    """

    action: Literal["start", "step", "promote", "rollback"]
    cause: str = ""
    step: int = 0
    weight: int = 0
    phase: EndPhase = "failed"
    message: str = ""


@dataclass(frozen=True, slots=True)
class CanaryRecord:
    """A canary run as stored. Times are unix seconds; ``revision`` is the last one the run made (or, while
    ``pending`` is a start, the deployment's revision it started from); ``step`` indexes ``steps``."""

    project: str
    deployment: str
    predictor: str
    stable: str
    to: str
    version: str  # the canary's resolved version (iris:7); empty until its first revision is made
    stable_version: str
    steps: tuple[int, ...]
    interval_s: float
    started_by: str
    started_at: float
    phase: CanaryPhase
    step: int
    weight: int
    revision: int
    message: str
    updated_at: float
    finished_at: float | None = None
    results: tuple[StepResult, ...] = ()
    abort_by: str | None = None
    pending: PendingApply | None = None
    id: int = 0  # given by the store

    @property
    def done(self) -> bool:
        return self.phase in DONE


class CanaryStore(Protocol):
    def begin(self, record: CanaryRecord) -> int:
        """Store a new run of ``record.project/record.deployment``; its id. ``Conflict`` while another run of
        that deployment is not done (checked in the same transaction); ``NotFound`` for an unknown
        deployment. Older finished runs of the deployment beyond the newest few are dropped."""

    def save(self, record: CanaryRecord) -> None:
        """Overwrite run ``record.id``. A run that is gone (its deployment was deleted) is not written."""

    def discard(self, run_id: int) -> None:
        """Remove a run (a start whose first revision was refused); removing one that is gone does nothing."""

    def latest(self, project: str, name: str) -> CanaryRecord | None:
        """The newest run of the deployment, or ``None``; ``NotFound`` for an unknown deployment."""

    def unfinished(self) -> list[CanaryRecord]:
        """Every run that is not done, oldest first: what a starting control plane resumes."""

    def close(self) -> None: ...
