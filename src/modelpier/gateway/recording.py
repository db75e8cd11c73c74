"""The prediction log on the request path: sampled requests become ``PredictionRecord``s.

Sampling is per request at ``predictionLog.sampleRate``; the record carries both bodies, the
predictor, the model version, the latency and whether the cache answered; with ``shadow.log`` the
shadow's answer rides in the same record (written once both answers are in).

gRPC calls are logged for ``ModelInfer`` only (``Call.prediction``), their protobuf messages
decoded to the V2 JSON shape (``grpc_json``), so ``pier logs predictions`` reads both protocols
alike; a replica's gRPC error is logged as ``{"error": message, "grpcStatus": code}``. Decoding is
paid only for sampled requests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import orjson

from modelpier.gateway.dispatch import JSON, Call, Served, ShadowResult
from modelpier.gateway.grpc_json import infer_request_json, infer_response_json
from modelpier.gateway.grpc_status import GRPC_CONTENT_TYPE, STATUS_KEY, answer_error
from modelpier.gateway.predlog import PredictionLogger, PredictionRecord, ShadowOutcome, should_log
from modelpier.gateway.proxy import Answer
from modelpier.spec.routing import DeploymentRoute

_JSON_TYPE = JSON.decode()
_GRPC_TYPE = GRPC_CONTENT_TYPE.decode()


def _content_type(answer: Answer | None) -> str | None:
    if answer is None:
        return None
    return next((v.decode("latin-1") for k, v in answer.headers if k == b"content-type"), None)


def grpc_answer_body(answer: Answer) -> tuple[bytes, str]:
    """A gRPC answer's body for the log, and its content type: V2 JSON when it decodes."""
    if answer.status == 200:
        decoded = infer_response_json(answer.body)
        return (orjson.dumps(decoded), _JSON_TYPE) if decoded is not None else (answer.body, _GRPC_TYPE)
    error = answer_error(answer)
    if error is not None and any(k == STATUS_KEY for k, _ in answer.headers):  # the replica's own error
        code, message = error
        return orjson.dumps({"error": message, "grpcStatus": code.name}), _JSON_TYPE
    return answer.body, _content_type(answer) or _JSON_TYPE  # the gateway's own refusal: its JSON envelope


def grpc_request_body(body: bytes) -> tuple[bytes, str]:
    decoded = infer_request_json(body)
    return (orjson.dumps(decoded), _JSON_TYPE) if decoded is not None else (body, _GRPC_TYPE)


class PredictionRecorder:
    def __init__(self, logger: PredictionLogger, *, rand: Callable[[], float] = random.random,
                 now: Callable[[], float] = time.time) -> None:
        self.logger, self.rand, self.now = logger, rand, now

    def record(self, route: DeploymentRoute, call: Call, served: Served, shadow: ShadowResult | None) -> None:
        policy = route.policy
        if not call.prediction or not should_log(policy.log_sample_rate, self.rand()) or served.predictor is None:
            return
        grpc = call.protocol == "grpc"
        replica = served.replica
        outcome = None
        if shadow is not None:
            body, kind = (grpc_answer_body(shadow.answer) if grpc
                          else (shadow.answer.body, _content_type(shadow.answer))) if shadow.answer else (b"", None)
            outcome = ShadowOutcome(
                shadow.predictor.name, shadow.replica.model_version if shadow.replica else None,
                shadow.answer.status if shadow.answer else 0, round(shadow.latency_s * 1000, 3), body, kind)
        request, request_type = grpc_request_body(call.body) if grpc else (call.body, call.header("content-type"))
        response, response_type = (grpc_answer_body(served.answer) if grpc
                                   else (served.answer.body, _content_type(served.answer)))
        self.logger.log(PredictionRecord(
            ts=self.now() - served.latency_s, request_id=call.request_id, project=route.project,
            deployment=route.deployment, predictor=served.predictor.name,
            model_version=replica.model_version if replica else None, status=served.answer.status,
            latency_ms=round(served.latency_s * 1000, 3), cache_hit=served.cache == "hit",
            request_body=request, response_body=response, request_content_type=request_type,
            response_content_type=response_type, shadow=outcome), sink=policy.log_sink)
