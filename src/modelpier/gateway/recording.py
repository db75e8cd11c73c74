"""The prediction log on the request path: sampled requests become ``PredictionRecord``s.

Sampling is per request at ``predictionLog.sampleRate``; the record carries both bodies, the
predictor, the model version, the latency and whether the cache answered; with ``shadow.log`` the
shadow's answer rides in the same record (written once both answers are in).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from modelpier.gateway.dispatch import Call, Served, ShadowResult
from modelpier.gateway.predlog import PredictionLogger, PredictionRecord, ShadowOutcome, should_log
from modelpier.gateway.proxy import Answer
from modelpier.spec.routing import DeploymentRoute


def _content_type(answer: Answer | None) -> str | None:
    if answer is None:
        return None
    return next((v.decode("latin-1") for k, v in answer.headers if k == b"content-type"), None)


class PredictionRecorder:
    def __init__(self, logger: PredictionLogger, *, rand: Callable[[], float] = random.random,
                 now: Callable[[], float] = time.time) -> None:
        self.logger, self.rand, self.now = logger, rand, now

    def record(self, route: DeploymentRoute, call: Call, served: Served, shadow: ShadowResult | None) -> None:
        policy = route.policy
        if not should_log(policy.log_sample_rate, self.rand()) or served.predictor is None:
            return
        replica = served.replica
        outcome = None
        if shadow is not None:
            outcome = ShadowOutcome(
                shadow.predictor.name, shadow.replica.model_version if shadow.replica else None,
                shadow.answer.status if shadow.answer else 0, round(shadow.latency_s * 1000, 3),
                shadow.answer.body if shadow.answer else b"", _content_type(shadow.answer))
        self.logger.log(PredictionRecord(
            ts=self.now() - served.latency_s, request_id=call.request_id, project=route.project,
            deployment=route.deployment, predictor=served.predictor.name,
            model_version=replica.model_version if replica else None, status=served.answer.status,
            latency_ms=round(served.latency_s * 1000, 3), cache_hit=served.cache == "hit",
            request_body=call.body, response_body=served.answer.body,
            request_content_type=call.header("content-type"), response_content_type=_content_type(served.answer),
            shadow=outcome), sink=policy.log_sink)
