"""Run a model on a batch of requests: merge, predict once, split back; on the loop or in a thread.

``predict_merged`` is the whole batching contract in one function: concatenate every request's
inputs along axis 0, call the runtime once for the union of the outputs they ask for, slice each
output back by row offsets. When the merged
call fails, or the model returns outputs whose first dimension is not the batch, each request is
run alone, so one bad request fails only itself and a model that cannot batch still answers.

``PredictExecutor`` decides where a call runs. A thread hop costs tens of microseconds of event-loop
time, more than a small linear model's whole prediction, so calls whose *estimated* cost is below
``inline_threshold_s`` run on the event loop; longer ones run in a worker thread so the loop keeps
accepting and decoding requests meanwhile. The estimate is learnt from timed calls (see
``CostEstimate``); before the first one, calls go to a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from modelpier.errors import PierError
from modelpier.server.batching.policy import CostEstimate
from modelpier.server.types import Array

Tensors = dict[str, Array]
# The outputs a request asks for; None: the model's defaults.
Outputs = frozenset[str] | None
Predict = Callable[[Tensors, Outputs], Tensors]
Outcome = Tensors | Exception


class UnbatchableOutput(PierError):
    """Outputs whose first dimension does not match the batch: they cannot be split by rows."""

    code = "unbatchable_output"


@dataclass(slots=True)
class BatchResult:
    outcomes: list[Outcome]
    merged_rows: int  # rows of the merged call that was timed; 0 when none succeeded merged
    merged_seconds: float
    batchable: bool  # False: the model's outputs cannot be split; stop merging its requests


def _merge(items: Sequence[Tensors]) -> Tensors:
    first = items[0]
    return {name: np.concatenate([it[name] for it in items]) for name in first}


def _split(outputs: Tensors, rows: Sequence[int]) -> list[Outcome]:
    total = sum(rows)
    for name, array in outputs.items():
        if not isinstance(array, np.ndarray) or array.ndim == 0 or array.shape[0] != total:
            got = getattr(array, "shape", type(array).__name__)
            raise UnbatchableOutput(f"output {name!r} has shape {got}, not {total} rows")
    result: list[Outcome] = []
    start = 0
    for n in rows:
        stop = start + n
        result.append({name: array[start:stop] for name, array in outputs.items()})
        start = stop
    return result


def predict_merged(predict: Predict, items: Sequence[Tensors], rows: Sequence[int],
                   batchable: bool = True, outputs: Outputs = None) -> BatchResult:
    """Predict ``items`` in one call when possible; never raises, failures become outcomes.

    ``outputs`` is what the whole batch asks for (the batcher passes the union of its requests').
    """
    if len(items) == 1:
        started = time.perf_counter()
        try:
            out = predict(items[0], outputs)
        except Exception as exc:
            return BatchResult([exc], 0, 0.0, batchable)
        return BatchResult([out], rows[0], time.perf_counter() - started, batchable)
    if batchable:
        started = time.perf_counter()
        try:
            merged = predict(_merge(items), outputs)
            seconds = time.perf_counter() - started
            return BatchResult(_split(merged, rows), sum(rows), seconds, True)
        except UnbatchableOutput:
            batchable = False
        except Exception:  # noqa: S110  # isolate the failing request by running each alone below
            pass
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append(predict(item, outputs))
        except Exception as exc:
            outcomes.append(exc)
    return BatchResult(outcomes, 0, 0.0, batchable)


class PredictExecutor:
    """Runs one model's batches inline or in a thread pool, by their estimated cost.

    Two estimates: ``cost`` learns from every call (wall time; the batching policy's call cost and
    the Retry-After hint), ``inline_cost`` only from calls made on the loop. Only the latter decides,
    because a call timed in a thread also counts the time it waited for the GIL while the loop ran,
    which would keep a cheap model in threads for good. While calls go to threads, one call per
    ``PROBE_INTERVAL_S`` still runs inline when the last inline estimate was within
    ``PROBE_FACTOR`` of the threshold, so a model that became cheap again returns to the loop; a
    model known to be slow (or to sleep on I/O) is never probed.
    """

    PROBE_INTERVAL_S = 1.0
    PROBE_FACTOR = 8.0

    def __init__(self, predict: Predict, pool: Executor, inline_threshold_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._predict = predict
        self._pool = pool
        self._inline_threshold_s = inline_threshold_s
        self._clock = clock
        self._last_inline = 0.0
        self.cost = CostEstimate()
        self.inline_cost = CostEstimate()
        self.batchable = True

    def retry_after_s(self, queued_rows: int, batch_rows: int) -> int:
        """Seconds until ``queued_rows`` are likely served: the Retry-After hint of a full queue."""
        fixed = self.cost.fixed_s or 0.0
        seconds = queued_rows * self.cost.per_row_s + fixed * (queued_rows / max(batch_rows, 1) + 1)
        return max(1, int(seconds + 0.999))

    def inline(self, rows: int) -> bool:
        estimate = self.inline_cost.predict_s(rows)
        if estimate is None:
            return False
        if estimate < self._inline_threshold_s:
            return True
        if estimate < self.PROBE_FACTOR * self._inline_threshold_s:
            return self._clock() - self._last_inline >= self.PROBE_INTERVAL_S
        return False

    def run_inline(self, items: Sequence[Tensors], rows: Sequence[int], outputs: Outputs = None) -> BatchResult:
        result = predict_merged(self._predict, items, rows, self.batchable, outputs)
        self._last_inline = self._clock()
        if result.merged_rows:
            before = self.inline_cost.predict_s(result.merged_rows)
            if before is not None and before >= self._inline_threshold_s > result.merged_seconds:
                # A probe found the model cheap again: start afresh rather than averaging back down.
                self.inline_cost = CostEstimate()
            self.inline_cost = self.inline_cost.observe(result.merged_rows, result.merged_seconds)
        return self.record(result)

    def start_threaded(self, items: Sequence[Tensors], rows: Sequence[int],
                       outputs: Outputs = None) -> asyncio.Future[BatchResult]:
        """Start the call in the pool; pass its result to ``record`` when it is done."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, predict_merged, self._predict, items, rows, self.batchable, outputs)

    def record(self, result: BatchResult) -> BatchResult:
        if result.merged_rows:
            self.cost = self.cost.observe(result.merged_rows, result.merged_seconds)
        self.batchable = result.batchable
        return result
