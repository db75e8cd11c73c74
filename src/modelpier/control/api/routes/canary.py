"""Progressive canary routes under ``/api/v1/projects/{project}/deployments/{name}/canary``.

Thin: the body is validated by ``control.canary_wire``; ``CanaryDriver`` does the work on the event
loop (so handlers are async: starting a canary creates its task there).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from modelpier.control.api.canary_wire import CanaryBody, CanaryStartBody
from modelpier.control.api.security import principal_of
from modelpier.control.canary.driver import CanaryDriver


def canary_router(driver: CanaryDriver) -> APIRouter:
    r = APIRouter(tags=["canary"])
    one = "/projects/{project}/deployments/{name}/canary"

    @r.post(one, response_model=CanaryBody, status_code=201,
            summary="Start a progressive canary",
            description="Adds (or replaces) the canary predictor with the model `to` at the first step's weight as a "
                        "new revision, then moves it step by step, judging each interval's error rate and p99 against "
                        "the stable predictor (spec.canary thresholds); promotes or rolls back on its own. 409 while "
                        "another canary of the deployment runs.")
    async def start(project: str, name: str, body: CanaryStartBody, request: Request) -> CanaryBody:
        run = await driver.start(project, name, body.request(), principal_of(request).user)
        return CanaryBody.of(run.record())

    @r.get(one, response_model=CanaryBody, summary="The running (or last) canary's progress",
           description="404 when no canary of the deployment has run. Canaries are stored: a running one is "
                       "resumed after a control-plane restart.")
    async def progress(project: str, name: str) -> CanaryBody:
        return CanaryBody.of(driver.get(project, name).record())

    @r.delete(one, response_model=CanaryBody, summary="Abort the running canary: it is rolled back",
              description="The canary predictor is removed and the stable one serves everything again. 409 when no "
                          "canary is running.")
    async def abort(project: str, name: str, request: Request) -> CanaryBody:
        return CanaryBody.of((await driver.abort(project, name, principal_of(request).user)).record())

    return r
