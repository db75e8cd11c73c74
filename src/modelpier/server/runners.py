"""``ModelRunner``: how the data plane hands checked inputs to a model, batched or not.

Two implementations share one shape: ``BatchQueue`` (``batching/queue.py``) merges concurrent
requests; ``DirectRunner`` runs each request by itself (batching off for that model). Both bound
the requests waiting for the model (``Overloaded`` past ``max_queue``) and return a future, which
the data plane awaits under the request's timeout.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from modelpier.errors import Overloaded, ServiceUnavailable
from modelpier.server.execution import BatchResult, Outputs, PredictExecutor, Tensors


class ModelRunner(Protocol):
    def submit(self, inputs: Tensors, rows: int, outputs: Outputs = None) -> asyncio.Future[Tensors]:
        """Queue one request asking for ``outputs`` (None: the model's defaults); raises ``Overloaded``
        when the model's queue is full. The result may hold more outputs than asked for."""

    @property
    def depth(self) -> int:
        """Requests accepted and not yet answered (queued or being predicted)."""


def settle(future: asyncio.Future[Tensors], outcome: Tensors | Exception) -> None:
    """Resolve a request's future, unless it was cancelled (its request timed out)."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def finished(task: asyncio.Future[BatchResult], count: int) -> BatchResult:
    """The result of a threaded call; a call cancelled by shutdown fails its requests as unavailable."""
    if task.cancelled():
        error = ServiceUnavailable("the server is shutting down")
        return BatchResult([error] * count, 0, 0.0, True)
    return task.result()


class DirectRunner:
    """One prediction per request: inline when cheap, else in the thread pool, several at once."""

    def __init__(self, executor: PredictExecutor, max_queue: int) -> None:
        self._executor = executor
        self._max_queue = max_queue
        self._pending = 0

    @property
    def depth(self) -> int:
        return self._pending

    def submit(self, inputs: Tensors, rows: int, outputs: Outputs = None) -> asyncio.Future[Tensors]:
        if self._pending >= self._max_queue:
            raise Overloaded(
                f"model queue is full ({self._pending} requests waiting)",
                retry_after_s=self._executor.retry_after_s(self._pending, 1),
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Tensors] = loop.create_future()
        if self._executor.inline(rows):
            settle(future, self._executor.run_inline([inputs], [rows], outputs).outcomes[0])
            return future
        self._pending += 1
        running = self._executor.start_threaded([inputs], [rows], outputs)

        def done(task: asyncio.Future[BatchResult]) -> None:
            self._pending -= 1
            result = finished(task, 1)
            settle(future, self._executor.record(result).outcomes[0])

        running.add_done_callback(done)
        return future
