"""``BatchQueue``: one model's adaptive batcher on the event loop.

Requests are appended with their row count and a future. A request that finds the model idle and the
queue empty while arrivals are sparse and recent batches held one request each (``decide_lone``) is
flushed at once, so a lone request is not delayed by a loop iteration; the requests that arrive in
the same iteration as that one wait for a check at its end (an inline run inflates the gap the
arrival rate sees, so the rate alone would send them all at once too, and nothing would merge
again). Otherwise a check runs at the end of the current loop iteration (so every request decoded in
the same iteration joins), after each completed prediction, and when the policy asks to look again;
``decide_flush`` says whether to flush. A flush takes requests from the front whose non-batch shapes
match, up to ``max_batch_size`` rows (a single larger request goes alone), predicts them once
through the ``PredictExecutor`` (inline or in a thread) for the union of the outputs they ask for,
and resolves each future with its own rows. Requests asking for different outputs still merge: for a
classifier, ``predict`` and ``predict_proba`` together cost one pass, and splitting the batch would
cost a call. One batch per model is in flight at a time: what arrives meanwhile forms the next
batch.

Waits shorter than the event loop's timer resolution (1 ms under uvloop) are done by re-checking
on the next loop iteration, after the loop has polled the sockets again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from modelpier.errors import Overloaded
from modelpier.server.batching.policy import QueueView, decide_flush, decide_lone, ewma
from modelpier.server.config import BatchingConfig
from modelpier.server.execution import BatchResult, Outputs, PredictExecutor, Tensors
from modelpier.server.runners import finished, settle

_TIMER_RESOLUTION_S = 0.001


class _Item:
    __slots__ = ("enqueued_at", "future", "inputs", "key", "outputs", "rows")

    def __init__(self, inputs: Tensors, rows: int, outputs: Outputs, future: asyncio.Future[Tensors],
                 now: float) -> None:
        self.inputs = inputs
        self.rows = rows
        self.outputs = outputs
        self.future = future
        self.enqueued_at = now
        # Requests merge only when every input has the same dtype and non-batch dimensions.
        self.key = tuple((n, a.dtype.char, a.shape[1:]) for n, a in inputs.items())


class BatchQueue:
    def __init__(
        self,
        executor: PredictExecutor,
        config: BatchingConfig,
        max_queue: int,
        on_batch: Callable[[int], None] = lambda rows: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._executor = executor
        self._max_batch = config.max_batch_size
        self._max_latency_s = config.max_latency_ms / 1000.0
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._clock = clock
        self._items: deque[_Item] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._busy = False
        self._check_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_arrival: float | None = None
        self._arrival_interval: float | None = None
        self._typical_rows: float | None = None
        self._typical_requests: float | None = None
        self._idle_since = 0.0

    @property
    def depth(self) -> int:
        return len(self._items) + self._in_flight

    @property
    def queued(self) -> int:
        return len(self._items)

    def submit(self, inputs: Tensors, rows: int, outputs: Outputs = None) -> asyncio.Future[Tensors]:
        if len(self._items) >= self._max_queue:
            raise Overloaded(
                f"model queue is full ({len(self._items)} requests waiting)",
                retry_after_s=self._executor.retry_after_s(self._queued_rows, self._max_batch),
            )
        loop = asyncio.get_running_loop()
        now = self._clock()
        if self._last_arrival is not None:
            # Gaps longer than the latency bound say "idle", not "slow arrivals": cap them, so one
            # pause does not make the next burst look sparse.
            gap = min(now - self._last_arrival, self._max_latency_s)
            self._arrival_interval = ewma(self._arrival_interval, gap)
        self._last_arrival = now
        future: asyncio.Future[Tensors] = loop.create_future()
        self._items.append(_Item(inputs, rows, outputs, future, now))
        self._queued_rows += rows
        if self._check_scheduled or self._busy:
            return future
        if len(self._items) == 1 and self._timer is None and decide_lone(
                self._max_latency_s, self._executor.cost.fixed_s, self._arrival_interval, self._typical_requests):
            # A lone request at an idle model goes now, not a loop iteration later: inline for a cheap
            # model, like an unbatched one, so batching costs it nothing. Then look again at the end
            # of the iteration, so the requests that arrive with it wait there and merge: an inline
            # run blocks the loop, so the gap to the next arrival includes it and arrivals look
            # sparse; without this check every request of a busy loop would go alone, for good.
            self._flush()
            self._check_scheduled = True
            loop.call_soon(self._check)
            return future
        self._check_scheduled = True
        loop.call_soon(self._check)
        return future

    def _check(self) -> None:
        self._check_scheduled = False
        self._drop_cancelled()
        if not self._items:
            return
        now = self._clock()
        decision = decide_flush(QueueView(
            # The batching delay counts from when the model could take the request: time spent
            # queued behind a running prediction is not a wait the batcher chose.
            now=now, queued_rows=self._queued_rows, oldest_at=max(self._items[0].enqueued_at, self._idle_since),
            busy=self._busy, max_batch_size=self._max_batch, max_latency_s=self._max_latency_s,
            call_cost_s=self._executor.cost.fixed_s, arrival_interval_s=self._arrival_interval,
            typical_rows=self._typical_rows,
        ))
        if decision.flush:
            self._flush()
        elif decision.recheck_at is not None:
            self._recheck_in(decision.recheck_at - now)

    def _recheck_in(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if delay < _TIMER_RESOLUTION_S:
            self._check_scheduled = True
            loop.call_soon(self._check)
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._check_scheduled:
            self._check()

    def _drop_cancelled(self) -> None:
        while self._items and self._items[0].future.done():
            self._queued_rows -= self._items.popleft().rows

    def _take(self) -> list[_Item]:
        first = self._items.popleft()
        batch = [first]
        rows = first.rows
        while self._items:
            item = self._items[0]
            if item.future.done():  # timed out while queued
                self._queued_rows -= self._items.popleft().rows
                continue
            if item.key != first.key or rows + item.rows > self._max_batch or not self._executor.batchable:
                break
            batch.append(self._items.popleft())
            rows += item.rows
        self._queued_rows -= rows
        return batch

    def _flush(self) -> None:
        batch = self._take()
        outputs = _union(batch)
        items = [it.inputs for it in batch]
        rows = [it.rows for it in batch]
        total = sum(rows)
        self._typical_rows = ewma(self._typical_rows, float(total))
        self._typical_requests = ewma(self._typical_requests, float(len(batch)))
        self._busy = True
        self._in_flight = len(batch)
        if self._executor.inline(total):
            self._complete(batch, self._executor.run_inline(items, rows, outputs), total)
            return
        running = self._executor.start_threaded(items, rows, outputs)
        running.add_done_callback(
            lambda task: self._complete(batch, self._executor.record(finished(task, len(batch))), total))

    def _complete(self, batch: list[_Item], result: BatchResult, total: int) -> None:
        self._busy = False
        self._idle_since = self._clock()
        self._in_flight = 0
        self._on_batch(total)
        for item, outcome in zip(batch, result.outcomes, strict=True):
            settle(item.future, outcome)
        if self._items and not self._check_scheduled:
            self._check_scheduled = True
            asyncio.get_running_loop().call_soon(self._check)


def _union(batch: list[_Item]) -> Outputs:
    """Every output some request of the batch asks for; None (the defaults) when one asks for them."""
    first = batch[0].outputs
    if first is None or len(batch) == 1:
        return first
    wanted = set(first)
    for item in batch:
        if item.outputs is None:
            return None
        wanted.update(item.outputs)
    return frozenset(wanted)
