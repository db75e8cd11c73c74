"""JSON bodies of the canary API (``.../deployments/{name}/canary``), shared by the routes, the
client and the CLI. camelCase, like the deployment bodies.

Built from the stored ``CanaryRecord`` (``canary_state``), never from the driver: a body is data
about a run, and importing the wire types must not import the effectful ``canary_driver``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from modelpier.control.canary.state import CanaryRecord, CanaryRequest, StepResult
from modelpier.control.traffic.store import RETENTION_S
from modelpier.errors import PierError
from modelpier.spec.names import ModelRef, validate_name
from modelpier.spec.traffic import PredictorTrafficWindow


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class CanaryStartBody(_Wire):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="Model reference the canary runs: name, name:3 or name:alias.")
    steps: list[int] = Field(default=[10, 50, 100], min_length=1, max_length=20,
                             description="Canary weights in percent, increasing; the first below 100. After the "
                                         "last step below 100 is judged healthy the canary is promoted (a final 100 "
                                         "says so).")
    interval_seconds: float = Field(60.0, ge=1, le=RETENTION_S,
                                    description="Seconds of traffic judged per step (at most the 15 minutes of "
                                                "traffic the control plane keeps).")
    predictor: str = Field("canary", description="Name of the canary predictor (added, or replaced if it exists).")

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        try:
            ModelRef.parse(value)
        except PierError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("predictor")
    @classmethod
    def _predictor(cls, value: str) -> str:
        try:
            return validate_name(value, what="predictor name")
        except PierError as exc:
            raise ValueError(exc.message) from None

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        if any(not 1 <= w <= 100 for w in value):
            raise ValueError(f"every step is a weight from 1 to 100, got {value}")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"steps must increase, got {value}")
        if value[0] >= 100:
            raise ValueError("the first step must be below 100: a canary at 100% from the start is a plain rollout "
                             "(pier deploy)")
        return value

    def request(self) -> CanaryRequest:
        return CanaryRequest(self.to, tuple(self.steps), self.interval_seconds, self.predictor)


class StepResultBody(_Wire):
    weight: int
    verdict: str = Field(description="promote-step, hold or rollback.")
    reason: str
    stable: PredictorTrafficWindow
    canary: PredictorTrafficWindow
    at: datetime

    @classmethod
    def of(cls, r: StepResult) -> StepResultBody:
        return cls(weight=r.weight, verdict=r.verdict, reason=r.reason, stable=r.stable, canary=r.canary,
                   at=datetime.fromtimestamp(r.at, UTC))


def _time(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class CanaryBody(_Wire):
    """A canary's progress: where it is, why, and each interval's judgement."""

    project: str
    deployment: str
    predictor: str
    stable: str
    to: str
    version: str = Field(description="The canary's model version.")
    stable_version: str
    steps: list[int]
    interval_seconds: float
    phase: str = Field(description="progressing, analyzing, promoting; then promoted, rolled-back, aborted, stopped "
                                   "or failed.")
    done: bool
    step: int = Field(description="1-based index of the current step.")
    weight: int = Field(description="The canary's weight now (percent).")
    revision: int = Field(description="The last revision the canary made.")
    message: str
    started_by: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    results: list[StepResultBody] = Field(default_factory=list, description="Judgements, oldest first.")

    @classmethod
    def of(cls, run: CanaryRecord) -> CanaryBody:
        return cls(project=run.project, deployment=run.deployment, predictor=run.predictor, stable=run.stable,
                   to=run.to, version=run.version, stable_version=run.stable_version, steps=list(run.steps),
                   interval_seconds=run.interval_s, phase=run.phase, done=run.done, step=run.step + 1,
                   weight=run.weight, revision=run.revision, message=run.message, started_by=run.started_by,
                   started_at=datetime.fromtimestamp(run.started_at, UTC),
                   updated_at=datetime.fromtimestamp(run.updated_at, UTC), finished_at=_time(run.finished_at),
                   results=[StepResultBody.of(r) for r in run.results])
