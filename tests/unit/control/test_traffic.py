"""TrafficStore: window queries over cumulative gateway snapshots, with an injected clock."""

from __future__ import annotations

import math

import pytest

from modelpier.control.traffic.counters import merge_histograms, quantile
from modelpier.control.traffic.store import TrafficStore
from modelpier.errors import InvalidInput
from modelpier.spec.traffic import (
    DeploymentTraffic,
    LatencyHistogram,
    PredictorTraffic,
    ShadowTraffic,
    TrafficReport,
)
from tests.unit.control.fakes import FakeClock

LE = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, math.inf)
KEY = ("default", "iris")


def hist(**at: int) -> LatencyHistogram:
    """A cumulative histogram with ``n`` observations in the bucket of bound ``le`` (e.g. b0_01=5)."""
    per = [0] * len(LE)
    for name, n in at.items():
        per[LE.index(float(name[1:].replace("_", ".")))] += n
    cumulative, running = [], 0
    for n in per:
        running += n
        cumulative.append(running)
    return LatencyHistogram(le=LE, counts=tuple(cumulative), sum=0.0)


def counters(requests: int = 0, errors: int = 0, *, in_flight: int = 0, waiting: int = 0, cache_hits: int = 0,
             latency: LatencyHistogram | None = None, replicas: dict[str, int] | None = None) -> PredictorTraffic:
    return PredictorTraffic(name="-", requests=requests, errors=errors, cache_hits=cache_hits, in_flight=in_flight,
                            waiting=waiting, replicas=replicas or {}, latency=latency or hist(b0_01=requests))


def report(gid: str, started: float, at: float, key: tuple[str, str], predictors: dict[str, PredictorTraffic],
           shadow: ShadowTraffic | None = None) -> TrafficReport:
    """The report a gateway sends; ``predictors`` by name."""
    deployment = DeploymentTraffic(project=key[0], deployment=key[1], shadow=shadow, predictors=tuple(
        c.model_copy(update={"name": name}) for name, c in predictors.items()))
    return TrafficReport(gateway=gid, started_at=started, at=at, deployments=(deployment,))


class Gateway:
    """A fake gateway posting snapshots to the store at the fake clock's time."""

    def __init__(self, store: TrafficStore, clock: FakeClock, gid: str = "gw-1", *,
                 started: float | None = None) -> None:
        self.store, self.clock, self.gid = store, clock, gid
        self.started = clock.now().timestamp() if started is None else started

    def send(self, predictors: dict[str, PredictorTraffic], shadow: ShadowTraffic | None = None,
             key: tuple[str, str] = KEY) -> None:
        self.store.record(report(self.gid, self.started, self.clock.now().timestamp(), key, predictors, shadow))


def setup() -> tuple[FakeClock, TrafficStore]:
    clock = FakeClock()
    return clock, TrafficStore(clock)


def test_rates_come_from_deltas_of_cumulative_counters() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    for second in range(1, 31):
        clock.advance(1)
        gw.send({"main": counters(requests=10 * second, errors=second // 10)})
    w = store.window(*KEY, 10)
    main = w.predictor("main")
    assert main.requests == 100
    assert main.request_rate == pytest.approx(10.0)
    assert main.errors == 1
    assert main.error_rate == pytest.approx(0.01)


def test_a_gateway_seen_from_its_start_counts_from_zero() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(1)
    gw.send({"main": counters(requests=7)})
    assert store.window(*KEY, 60).predictor("main").requests == 7


def test_a_gateway_first_seen_long_after_its_start_is_only_a_baseline() -> None:
    clock, store = setup()
    gw = Gateway(store, clock, started=clock.now().timestamp() - 3600)  # the control plane restarted
    gw.send({"main": counters(requests=1_000_000)})
    assert store.window(*KEY, 60).predictor("main").requests == 0
    clock.advance(1)
    gw.send({"main": counters(requests=1_000_005)})
    assert store.window(*KEY, 60).predictor("main").requests == 5


def test_a_restarted_gateway_has_a_new_id_and_starts_afresh() -> None:
    clock, store = setup()
    old = Gateway(store, clock, "gw-old")
    clock.advance(1)
    old.send({"main": counters(requests=50)})
    clock.advance(1)
    new = Gateway(store, clock, "gw-new")
    clock.advance(1)
    new.send({"main": counters(requests=3)})
    assert store.window(*KEY, 60).predictor("main").requests == 53


def test_a_counter_reset_within_one_gateway_counts_the_new_value() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    for requests in (10, 20, 4, 6):  # reset after 20
        clock.advance(1)
        gw.send({"main": counters(requests=requests)})
    assert store.window(*KEY, 60).predictor("main").requests == 20 + 4 + 2


def test_gateways_add_up() -> None:
    clock, store = setup()
    a, b = Gateway(store, clock, "gw-a"), Gateway(store, clock, "gw-b")
    clock.advance(1)
    a.send({"main": counters(requests=10, in_flight=3)})
    b.send({"main": counters(requests=20, in_flight=4)})
    main = store.window(*KEY, 60).predictor("main")
    assert (main.requests, main.in_flight) == (30, 7)


def test_only_the_window_counts() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(1)
    gw.send({"main": counters(requests=100)})
    clock.advance(30)
    gw.send({"main": counters(requests=110)})
    assert store.window(*KEY, 10).predictor("main").requests == 10
    assert store.window(*KEY, 60).predictor("main").requests == 110


def test_percentiles_are_interpolated_from_bucket_deltas() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(1)
    gw.send({"main": counters(requests=100, latency=hist(b0_001=100))})  # before the window: all fast
    clock.advance(20)
    gw.send({"main": counters(requests=200, latency=hist(b0_001=100, b0_01=50, b0_1=50))})
    main = store.window(*KEY, 10).predictor("main")
    # In the window: 50 in (0.005, 0.01], 50 in (0.05, 0.1]. p50 is the top of the first half.
    assert main.p50_s == pytest.approx(0.01)
    assert main.p99_s == pytest.approx(0.05 + 0.05 * 49 / 50)


def test_no_requests_means_no_percentiles_and_zero_rates() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(1)
    gw.send({"main": counters()})
    main = store.window(*KEY, 60).predictor("main")
    assert (main.p50_s, main.p99_s, main.error_rate, main.cache_hit_rate) == (None, None, 0.0, 0.0)
    unknown = store.window("default", "nope", 60)
    assert unknown.predictors == {}
    assert unknown.predictor("main").requests == 0


def test_gauges_are_the_latest_and_stale_gateways_do_not_count() -> None:
    clock, store = setup()
    a, b = Gateway(store, clock, "gw-a"), Gateway(store, clock, "gw-b")
    clock.advance(1)
    a.send({"main": counters(in_flight=5, waiting=1, replicas={"r1": 3, "r2": 2})})
    b.send({"main": counters(in_flight=2, replicas={"r2": 2})})
    clock.advance(1)
    a.send({"main": counters(in_flight=4, replicas={"r1": 2, "r2": 2})})
    main = store.window(*KEY, 60).predictor("main")
    assert (main.in_flight, main.waiting, main.replicas) == (6, 0, 2)
    clock.advance(9.5)  # b's report is now older than stale_after_s (10 s); a's is not
    assert store.window(*KEY, 60).predictor("main").in_flight == 4


def test_cache_hit_rate() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(1)
    gw.send({"main": counters(requests=40, cache_hits=10)})
    assert store.window(*KEY, 60).predictor("main").cache_hit_rate == pytest.approx(0.25)


def test_shadow_agreement_and_mean_absolute_error() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(1)
    gw.send({"main": counters(requests=10)}, ShadowTraffic(predictor="canary", mirrored=10, compared=10, agreed=9))
    clock.advance(1)
    gw.send({"main": counters(requests=30)},
            ShadowTraffic(predictor="canary", mirrored=30, failed=2, compared=28, agreed=19, numeric=8,
                          abs_error_sum=0.4))
    shadow = store.window(*KEY, 60).shadow
    assert shadow is not None
    assert (shadow.predictor, shadow.mirrored, shadow.failed, shadow.compared) == ("canary", 30, 2, 28)
    assert shadow.agreement_rate == pytest.approx(19 / 20)  # class-like pairs: compared - numeric
    assert shadow.mean_abs_error == pytest.approx(0.05)
    assert store.window(*KEY, 60, 30).shadow is not None
    assert Gateway(store, clock, "gw-2").store.window("default", "other", 60).shadow is None


def test_a_series_has_one_point_per_step_oldest_first() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    end = None
    for second in range(1, 61):
        clock.advance(1)
        gw.send({"main": counters(requests=second * (2 if second > 30 else 1), in_flight=second)})
        end = clock.now().timestamp()
    w = store.window(*KEY, 60, 10)
    assert len(w.series) == 6
    assert [p.t for p in w.series] == pytest.approx([end - 50, end - 40, end - 30, end - 20, end - 10, end])
    rates = [p.predictors["main"].request_rate for p in w.series]
    assert rates[:2] == pytest.approx([1.0, 1.0])
    assert rates[-1] == pytest.approx(2.0)
    assert w.series[-1].predictors["main"].in_flight == 60
    assert w.series[0].predictors["main"].in_flight == 10
    assert sum(p.predictors["main"].requests for p in w.series) == w.predictor("main").requests


def test_memory_is_bounded() -> None:
    clock, store = setup()
    store = TrafficStore(clock, retention_s=60, min_spacing_s=0.5)
    gw = Gateway(store, clock)
    for i in range(2000):
        clock.advance(0.1)  # ten reports a second: coalesced
        gw.send({"main": counters(requests=i)})
    # The pair straddling the window start counts whole: at most one coalesced step (0.5 s) more.
    assert store.window(*KEY, 60).predictor("main").requests == pytest.approx(600, abs=6)
    assert store.stats()["snapshots"] <= 3 * 60  # about two a second, not ten
    clock.advance(120)
    Gateway(store, clock, "gw-2").send({"main": counters()})
    assert store.stats()["gateways"] == 1  # the silent one is dropped


def test_reports_older_than_the_last_are_ignored() -> None:
    clock, store = setup()
    gw = Gateway(store, clock)
    clock.advance(2)
    gw.send({"main": counters(requests=10)})
    late = report("gw-1", gw.started, clock.now().timestamp() - 1, KEY, {"main": counters(requests=5)})
    store.record(late)
    assert store.window(*KEY, 60).predictor("main").requests == 10


@pytest.mark.parametrize(("window", "step"), [(0, None), (901, None), (60, 61), (60, 0.01)])
def test_bad_windows_are_refused(window: float, step: float | None) -> None:
    _, store = setup()
    with pytest.raises(InvalidInput):
        store.window(*KEY, window, step)


@pytest.mark.parametrize(("q", "expected"), [(0.25, 0.0075), (0.5, 0.01), (0.99, 30.0), (0.0, None)])
def test_quantile_edges(q: float, expected: float | None) -> None:
    bounds = (0.005, 0.01, 30.0, math.inf)
    counts = (0, 10, 10, 20)  # half in (0.005, 0.01], half beyond the last finite bound
    if expected is None:
        assert quantile(q, bounds, (0, 0, 0, 0)) is None
    else:
        assert quantile(q, bounds, counts) == pytest.approx(expected)


def test_histograms_with_different_bounds_merge_as_step_functions() -> None:
    bounds, counts = merge_histograms({(0.01, math.inf): [4, 5], (0.005, 0.01, math.inf): [1, 2, 2]})
    assert bounds == (0.005, 0.01, math.inf)
    assert counts == [1, 6, 7]
