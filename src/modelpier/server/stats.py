"""The V2 statistics extension (Triton's ``GET /v2/models[/{m}[/versions/{v}]]/stats``), from the
server's own counters.

``ServerMetrics`` feeds a ``StatsBook`` on the hot path (plain integer adds on the event loop, like
the Prometheus counters beside it): every finished request by outcome and duration, every model
execution by batch size, every successful inference by rows. ``model_stats`` renders the
extension's ``$model_stat`` objects. Durations the server does not measure separately (queueing
apart from computing, input and output conversion) are reported as count with ``ns`` 0 rather than
invented; ``success``/``fail`` durations are the whole request, decode to encode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Duration:
    count: int = 0
    ns: int = 0

    def wire(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class ModelStats:
    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    inference_count: int = 0  # rows (a batch of 8 rows is 8 inferences, as Triton counts)
    execution_count: int = 0  # model calls
    batches: dict[int, int] = field(default_factory=dict)  # batch size -> model calls
    last_inference_ms: int = 0


class StatsBook:
    """Per-model statistics since the server started."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._models: dict[str, ModelStats] = {}

    def _of(self, model: str) -> ModelStats:
        stats = self._models.get(model)
        if stats is None:
            stats = self._models[model] = ModelStats()
        return stats

    def request(self, model: str, ok: bool, seconds: float) -> None:
        slot = self._of(model).success if ok else self._of(model).fail
        slot.count += 1
        slot.ns += int(seconds * 1e9)

    def execution(self, model: str, rows: int) -> None:
        stats = self._of(model)
        stats.execution_count += 1
        stats.batches[rows] = stats.batches.get(rows, 0) + 1

    def inferred(self, model: str, rows: int) -> None:
        stats = self._of(model)
        stats.inference_count += rows
        stats.last_inference_ms = int(self._clock() * 1000)

    def model_stats(self, names: list[str], versions: dict[str, str | None]) -> dict[str, Any]:
        """The extension's ``$stats_model_response`` for ``names`` (in that order)."""
        return {"model_stats": [self._wire(name, versions.get(name)) for name in names]}

    def _wire(self, name: str, version: str | None) -> dict[str, Any]:
        stats = self._models.get(name) or ModelStats()
        unmeasured = {"count": stats.success.count, "ns": 0}
        return {
            "name": name,
            "version": version or "",
            "last_inference": stats.last_inference_ms,
            "inference_count": stats.inference_count,
            "execution_count": stats.execution_count,
            "inference_stats": {
                "success": stats.success.wire(), "fail": stats.fail.wire(),
                "queue": unmeasured, "compute_input": unmeasured, "compute_infer": unmeasured,
                "compute_output": unmeasured, "cache_hit": {"count": 0, "ns": 0}, "cache_miss": {"count": 0, "ns": 0},
            },
            "batch_stats": [
                {"batch_size": size, "compute_input": {"count": n, "ns": 0}, "compute_infer": {"count": n, "ns": 0},
                 "compute_output": {"count": n, "ns": 0}}
                for size, n in sorted(stats.batches.items())
            ],
        }
