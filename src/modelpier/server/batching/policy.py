"""When to flush a model's queue into one prediction: a pure function of time and observations.

The batcher asks ``decide_flush`` after every arrival, every finished prediction and every wake-up.
The rules, in order:

1. nothing queued: idle; a prediction already running: hold (its completion asks again, and the
   requests that arrived meanwhile form the next batch — under load, batches grow by themselves);
2. a full batch, or the oldest request waited ``max_latency``: flush;
3. without estimates of the model's call cost and of the arrival rate: flush (no evidence that
   waiting pays);
4. waiting is worth at most one model call: merging more requests saves one call's fixed cost, so
   a request is never held longer than ``min(max_latency, call_cost)`` (the horizon);
5. as many rows as recent batches had (a moving average): flush — with a fixed number of
   clients, that is everyone, and waiting longer would only add latency;
6. fewer than one more arrival expected before the horizon (arrival rate x time left): flush.

So a lone request goes at once (rule 6), a burst is merged while it arrives, and a busy model
collects everything that arrives while it computes. Time is passed in, never read, so tests
drive it with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

# Weight of the newest observation in the moving averages below.
EWMA_ALPHA = 0.2
# Requests per batch (moving average) from which arrivals count as concurrent for ``decide_lone``:
# halfway between one client (always 1) and two.
LONE_MAX_REQUESTS = 1.5


@dataclass(frozen=True, slots=True)
class QueueView:
    """What the policy sees of one model's queue; times are monotonic seconds."""

    now: float
    queued_rows: int
    oldest_at: float
    busy: bool
    max_batch_size: int
    max_latency_s: float
    call_cost_s: float | None  # estimated fixed cost of one model call
    arrival_interval_s: float | None  # moving average of the time between arrivals
    typical_rows: float | None  # moving average of the rows of recent batches


@dataclass(frozen=True, slots=True)
class FlushDecision:
    flush: bool
    # When to ask again if nothing happens before; None: wait for an arrival or a completion.
    recheck_at: float | None = None


IDLE = FlushDecision(flush=False)
FLUSH = FlushDecision(flush=True)


def decide_flush(view: QueueView) -> FlushDecision:
    if view.queued_rows <= 0 or view.busy:
        return IDLE
    deadline = view.oldest_at + view.max_latency_s
    if (view.queued_rows >= view.max_batch_size or view.now >= deadline
            or view.call_cost_s is None or view.arrival_interval_s is None):
        return FLUSH
    horizon = min(deadline, view.oldest_at + view.call_cost_s)
    as_usual = view.typical_rows is not None and view.queued_rows >= view.typical_rows
    sparse = view.arrival_interval_s <= 0 or (horizon - view.now) / view.arrival_interval_s < 1.0
    if view.now >= horizon or as_usual or sparse:
        return FLUSH
    return FlushDecision(flush=False, recheck_at=horizon)


def decide_lone(max_latency_s: float, call_cost_s: float | None, arrival_interval_s: float | None,
                typical_requests: float | None) -> bool:
    """Should a request that finds the model idle and its queue empty go at once, without waiting for
    the end of the loop iteration? Only when arrivals are known to be sparse: less than one more is
    expected within the horizon (rule 6 at the moment of arrival), and recent batches held one
    request each. Under load it waits, so the other requests of the iteration join it; before any
    arrival rate is known it waits for the same reason. Recent batches that merged requests (on
    average ``LONE_MAX_REQUESTS`` or more) mean several clients whatever the arrival average says:
    an inline run blocks the loop, so the gap to the next arrival includes it and a busy loop looks
    sparse; sending the first request of each iteration alone would cost a model call per iteration."""
    if call_cost_s is None or arrival_interval_s is None:
        return False
    if typical_requests is not None and typical_requests >= LONE_MAX_REQUESTS:
        return False
    return min(max_latency_s, call_cost_s) < arrival_interval_s


def ewma(previous: float | None, sample: float, alpha: float = EWMA_ALPHA) -> float:
    return sample if previous is None else previous + alpha * (sample - previous)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Online least squares of ``seconds = fixed + per_row * rows`` with exponential forgetting.

    ``observe`` returns a new estimate; a model whose batches all have the same size gets a zero
    slope and its mean time as the fixed cost, which is what the policy needs. Observations above
    twice the estimate are clipped to it, so one stalled call does not swing the estimate.
    """

    mean_rows: float | None = None
    mean_s: float | None = None
    var_rows: float = 0.0
    cov: float = 0.0

    def observe(self, rows: int, seconds: float, alpha: float = EWMA_ALPHA) -> CostEstimate:
        if self.mean_rows is None or self.mean_s is None:
            return CostEstimate(mean_rows=float(rows), mean_s=seconds)
        # A call preempted by another process, or caught by a garbage collection, is not the model
        # getting slower: count at most twice the expected time (a real slow-down still doubles
        # the estimate per call).
        expected = self.predict_s(rows)
        if expected is not None and expected > 0:
            seconds = min(seconds, 2.0 * expected)
        dx = rows - self.mean_rows
        dy = seconds - self.mean_s
        mean_rows = self.mean_rows + alpha * dx
        mean_s = self.mean_s + alpha * dy
        var_rows = (1 - alpha) * (self.var_rows + alpha * dx * dx)
        cov = (1 - alpha) * (self.cov + alpha * dx * dy)
        return CostEstimate(mean_rows=mean_rows, mean_s=mean_s, var_rows=var_rows, cov=cov)

    @property
    def per_row_s(self) -> float:
        if self.var_rows <= 1e-9:
            return 0.0
        return max(0.0, self.cov / self.var_rows)

    @property
    def fixed_s(self) -> float | None:
        if self.mean_rows is None or self.mean_s is None:
            return None
        return max(0.0, self.mean_s - self.per_row_s * self.mean_rows)

    def predict_s(self, rows: int) -> float | None:
        fixed = self.fixed_s
        return None if fixed is None else fixed + self.per_row_s * rows
