"""The batcher and the merge/split contract, in-process on an in-memory runtime."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from modelpier.errors import InvalidInput, Overloaded
from modelpier.server.batching.policy import CostEstimate
from modelpier.server.batching.queue import BatchQueue
from modelpier.server.config import BatchingConfig
from modelpier.server.execution import PredictExecutor, predict_merged
from modelpier.server.runners import DirectRunner

from .fakes import Doubler


def rows(*values: float) -> dict[str, Any]:
    return {"x": np.array([[v, v] for v in values])}


def test_predict_merged_concatenates_predicts_once_and_splits_back() -> None:
    model = Doubler()
    result = predict_merged(model.predict, [rows(1), rows(2, 3), rows(4)], [1, 2, 1])
    assert model.calls == [4]
    assert [o["y"][:, 0].tolist() for o in result.outcomes] == [[2], [4, 6], [8]]  # type: ignore[index]
    assert result.merged_rows == 4
    assert result.batchable


def test_a_failing_request_fails_alone() -> None:
    model = Doubler()
    result = predict_merged(model.predict, [rows(1), rows(-1), rows(3)], [1, 1, 1])
    assert isinstance(result.outcomes[1], RuntimeError)
    assert result.outcomes[0]["y"].tolist() == [[2, 2]]  # type: ignore[index]
    assert result.outcomes[2]["y"].tolist() == [[6, 6]]  # type: ignore[index]


def test_a_model_whose_outputs_cannot_be_split_is_run_per_request() -> None:
    def summary(inputs: dict[str, Any], outputs: frozenset[str] | None) -> dict[str, Any]:
        return {"total": np.array([inputs["x"].sum()])}  # one row whatever the batch

    result = predict_merged(summary, [rows(1), rows(2)], [1, 1])
    assert not result.batchable
    assert [o["total"].tolist() for o in result.outcomes] == [[2.0], [4.0]]  # type: ignore[index]


async def _concurrent(queue: BatchQueue, values: list[float]) -> list[Any]:
    futures = [queue.submit(rows(v), 1) for v in values]
    return await asyncio.gather(*futures)


def _queue(model: Doubler, *, max_queue: int = 100, batch: int = 64) -> tuple[BatchQueue, list[int]]:
    pool = ThreadPoolExecutor(2)
    executor = PredictExecutor(model.predict, pool, inline_threshold_s=0.0)  # always a thread
    sizes: list[int] = []
    queue = BatchQueue(executor, BatchingConfig(max_batch_size=batch, max_latency_ms=5), max_queue,
                       on_batch=sizes.append)
    return queue, sizes


def test_requests_queued_in_one_loop_iteration_form_one_batch_and_get_their_own_rows() -> None:
    model = Doubler()
    queue, sizes = _queue(model)
    results = asyncio.run(_concurrent(queue, [1, 2, 3, 4, 5]))
    assert sizes == [5]
    assert model.calls == [5]
    assert [r["y"][0, 0] for r in results] == [2, 4, 6, 8, 10]


def test_requests_arriving_while_the_model_is_busy_form_the_next_batch() -> None:
    model = Doubler()
    queue, sizes = _queue(model)

    async def go() -> list[Any]:
        model.gate.clear()
        first = queue.submit(rows(1), 1)
        assert await asyncio.to_thread(model.started.wait, 10)  # running, and held at the gate
        later = [queue.submit(rows(v), 1) for v in (2, 3, 4)]
        assert queue.depth == 4
        model.gate.set()
        return await asyncio.gather(first, *later)

    results = asyncio.run(go())
    assert sizes == [1, 3]
    assert [r["y"][0, 0] for r in results] == [2, 4, 6, 8]


def test_batches_respect_max_batch_size() -> None:
    model = Doubler()
    queue, sizes = _queue(model, batch=2)
    asyncio.run(_concurrent(queue, [1, 2, 3, 4, 5]))
    assert sizes == [2, 2, 1]


def test_a_full_queue_refuses_with_a_retry_hint() -> None:
    model = Doubler()
    queue, _ = _queue(model, max_queue=2)

    async def go() -> None:
        queue.submit(rows(1), 1)
        queue.submit(rows(2), 1)
        with pytest.raises(Overloaded) as info:
            queue.submit(rows(3), 1)
        assert info.value.retry_after_s >= 1

    asyncio.run(go())


def test_model_errors_reach_only_their_request() -> None:
    model = Doubler()
    queue, _ = _queue(model)

    async def go() -> list[Any]:
        return await asyncio.gather(*(queue.submit(rows(v), 1) for v in (1, -1, 3)), return_exceptions=True)

    ok, bad, ok2 = asyncio.run(go())
    assert isinstance(bad, RuntimeError)
    assert ok["y"][0, 0] == 2
    assert ok2["y"][0, 0] == 6


def test_cancelled_requests_are_skipped() -> None:
    model = Doubler()
    queue, sizes = _queue(model)

    async def go() -> Any:
        gone = queue.submit(rows(1), 1)
        kept = queue.submit(rows(2), 1)
        gone.cancel()
        return await kept

    assert asyncio.run(go())["y"][0, 0] == 4
    assert sizes == [1]


def test_direct_runner_runs_each_request_and_bounds_the_queue() -> None:
    model = Doubler()
    executor = PredictExecutor(model.predict, ThreadPoolExecutor(2), inline_threshold_s=0.0)
    runner = DirectRunner(executor, max_queue=1)

    async def go() -> Any:
        first = runner.submit(rows(1), 1)
        with pytest.raises(Overloaded):
            runner.submit(rows(2), 1)
        return await first

    assert asyncio.run(go())["y"][0, 0] == 2


def test_cheap_models_run_inline_once_measured() -> None:
    model = Doubler()
    executor = PredictExecutor(model.predict, ThreadPoolExecutor(1), inline_threshold_s=1.0)
    assert not executor.inline(1)  # unknown cost: a thread
    executor.run_inline([rows(1)], [1])
    assert executor.inline(1)


@pytest.mark.parametrize(("measured_s", "probed"), [(0.002, True), (0.02, False)])
def test_models_in_threads_are_probed_inline_once_a_second_unless_known_slow(measured_s: float,
                                                                            probed: bool) -> None:
    now = [100.0]
    executor = PredictExecutor(Doubler().predict, ThreadPoolExecutor(1), inline_threshold_s=0.001,
                               clock=lambda: now[0])
    executor.inline_cost = CostEstimate().observe(1, measured_s)
    assert executor.inline(1) is probed  # the last inline run was long ago
    executor.run_inline([rows(1)], [1])
    executor.inline_cost = CostEstimate().observe(1, measured_s)
    assert not executor.inline(1)  # just probed
    now[0] += 1.5
    assert executor.inline(1) is probed


def test_invalid_input_raised_by_a_runtime_is_a_client_error() -> None:
    def picky(inputs: dict[str, Any], outputs: frozenset[str] | None) -> dict[str, Any]:
        raise InvalidInput("input 'x': the model wants positive values")

    result = predict_merged(picky, [rows(1)], [1])
    assert isinstance(result.outcomes[0], InvalidInput)


def _warm_cheap_queue() -> tuple[Doubler, BatchQueue, list[float]]:
    """A queue over a model already known to be cheap (one warm-up call), on a clock the test moves."""
    model = Doubler()
    executor = PredictExecutor(model.predict, ThreadPoolExecutor(1), inline_threshold_s=1.0)
    executor.run_inline([rows(1)], [1])  # the warm-up: the model is known to be cheap
    now = [0.0]
    queue = BatchQueue(executor, BatchingConfig(max_batch_size=64, max_latency_ms=5), 100, clock=lambda: now[0])
    return model, queue, now


def test_a_lone_request_to_an_idle_cheap_model_is_answered_within_submit() -> None:
    model, queue, now = _warm_cheap_queue()

    async def go() -> tuple[bool, bool]:
        first = queue.submit(rows(1), 1)  # no arrival rate yet: decided at the end of the iteration
        first_done = first.done()
        await first
        now[0] += 1.0  # a second later: arrivals are sparse, nothing to wait for
        second = queue.submit(rows(2), 1)
        return first_done, second.done()

    assert asyncio.run(go()) == (False, True)
    assert model.calls == [1, 1, 1]  # warm-up, then each request alone


def test_requests_arriving_with_one_that_went_at_once_merge_at_the_end_of_the_iteration() -> None:
    # The regression of the lone path: a request run inline blocks the loop, so the gap to the next
    # arrival includes that run and arrivals look sparse to the moving average; if the next request
    # of the same loop iteration went at once too, every request would go alone under any load and
    # nothing would batch again (iris at 64 connections: 15k -> 3.8k req/s).
    model, queue, now = _warm_cheap_queue()

    async def iteration(values: list[float]) -> list[bool]:
        # Every submit looks sparse: the clock jumps by more than the latency bound each time.
        futures = []
        for v in values:
            now[0] += 1.0
            futures.append(queue.submit(rows(v), 1))
        at_once = [f.done() for f in futures]
        await asyncio.gather(*futures)
        return at_once

    async def go() -> list[list[bool]]:
        await queue.submit(rows(0), 1)  # an arrival rate is known from here on
        return [await iteration([1, 2, 3, 4, 5]), await iteration([6, 7, 8, 9, 10, 11, 12, 13]),
                await iteration([14, 15, 16]), [(await iteration([v]))[0] for v in range(20, 30)]]

    at_once = asyncio.run(go())
    assert at_once[:3] == [[True] + [False] * 4, [False] * 8, [False] * 3]
    # Back to one client: once the batches' moving average falls under 1.5 requests, a lone request
    # goes at once again.
    assert at_once[3] == [False] * 6 + [True] * 4
    # Warm-up, the first request, the first of the next iteration alone and the rest in one call;
    # from then on batches merge requests (several clients), so even the first of an iteration
    # waits for the others (decide_lone) and each iteration is one call.
    assert model.calls == [1, 1, 1, 4, 8, 3] + [1] * 10
