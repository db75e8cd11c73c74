"""``modelpier.Client`` through the gateway of a real ``pier up``: deployments by name for every
protocol and input type, defaults from settings, tokens, async jobs, errors with the replica's words,
and a replica killed mid-run (the client never sends again a request that reached a model)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelpier
from modelpier.errors import InvalidInput, NotFound, PierError, ServiceUnavailable, Unauthenticated
from modelpier.settings import Settings, load_settings
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_TOKEN, wait_until

from .client_support import doc_blocks, executions, save_tabular, write_counting_model

pytestmark = pytest.mark.slow

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return replica_env(36000 + (os.getpid() % 50) * 200 % 20000)


@pytest.fixture(scope="module")
def calls_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("calls") / "calls.log"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], calls_log: Path) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("client-platform")
    save_models(home)
    save_tabular(home)
    folder = write_counting_model(home / "counting-src", calls_log)
    modelpier.save_model("counting", folder, flavor="python", settings=load_settings(home=home))
    try:
        with run_platform(home, env) as p:
            p.apply("iris", [{"name": "main", "model": "iris:1", "replicas": 2}])
            p.apply("guarded", [{"name": "main", "model": "iris:1", "replicas": 1}], auth={"mode": "token"})
            p.apply("tabular", [{"name": "main", "model": "tabular:1", "replicas": 1}])
            p.apply("counting", [{"name": "main", "model": "counting:1", "replicas": 1}])
            for name, replicas in (("iris", 2), ("guarded", 1), ("tabular", 1), ("counting", 1)):
                p.wait_ready(name, replicas)
            yield p
    finally:
        pier_down(home, env)


@pytest.fixture(scope="module")
def settings(platform: Platform, env: dict[str, str]) -> Settings:
    """What a user's settings say after `pier up` and `pier login`: the gateway's ports and a token."""
    return load_settings(home=platform.home, token=ADMIN_TOKEN, gateway={
        "port": int(platform.gateway.rsplit(":", 1)[1]), "grpc_port": int(env["PIER_GATEWAY__GRPC_PORT"])})


@pytest.fixture(scope="module")
def expected(platform: Platform) -> list[int]:
    model = modelpier.load_model("iris:1", settings=load_settings(home=platform.home))
    return [int(v) for v in model.predict(ROWS.astype("float32"))]


def _data(kind: str) -> Any:
    return {"numpy": ROWS, "list": ROWS.tolist(), "dict": {"input-0": ROWS},
            "dataframe": pd.DataFrame(ROWS, columns=["a", "b", "c", "d"])}[kind]


@pytest.mark.parametrize("kind", ["numpy", "list", "dict", "dataframe"])
@pytest.mark.parametrize("how", [{"binary": False}, {"binary": True}, {"grpc": True}, {"protocol": "kserve-v1"},
                                 {"protocol": "seldon"}], ids=["json", "binary", "grpc", "kserve-v1", "seldon"])
def test_a_deployment_by_name_with_defaults_from_settings(settings: Settings, expected: list[int], kind: str,
                                                          how: dict[str, Any]) -> None:
    with modelpier.Client(settings=settings) as client:  # no URL: the local gateway, the stored token
        answer = client.predict("iris", _data(kind), **how)
    assert list(answer["predict"]) == expected
    if kind != "dataframe":
        assert answer.model_version == "iris:1"
        assert answer.headers["x-pier-predictor"] == "main"


def test_async_client_through_the_gateway(settings: Settings, expected: list[int]) -> None:
    async def main() -> list[Any]:
        async with modelpier.AsyncClient(settings=settings) as client:
            return list(await asyncio.gather(*(client.predict("iris", ROWS, grpc=i % 2 == 0) for i in range(16))))

    assert all(list(a["predict"]) == expected for a in asyncio.run(main()))


def test_columns_of_a_dataframe_through_the_gateway(settings: Settings) -> None:
    frame = pd.DataFrame({"age": [1, 2], "city": ["ab", "abc"]})
    with modelpier.Client(settings=settings) as client:
        assert client.predict("tabular", frame)["score"].tolist() == [3.0, 5.0]


def test_tokens(settings: Settings, platform: Platform) -> None:
    with modelpier.Client(settings=settings) as client:
        assert client.predict("guarded", ROWS)["predict"].shape == (2,)
    with modelpier.Client(platform.gateway, token="pier_wrong", retries=0) as client, \
            pytest.raises(Unauthenticated):
        client.predict("guarded", ROWS, model="iris")


def test_errors_carry_the_replicas_words(settings: Settings) -> None:
    with modelpier.Client(settings=settings) as client:
        with pytest.raises(InvalidInput, match="input-0") as caught:
            client.predict("iris", [[1.0, 2.0]])
        assert caught.value.details["request_id"]
        with pytest.raises(InvalidInput, match="input-0"):
            client.predict("iris", [[1.0, 2.0]], grpc=True)
        with pytest.raises(NotFound, match="nope"):
            client.predict("nope", ROWS)


def test_async_jobs_submit_wait_result(settings: Settings, expected: list[int]) -> None:
    with modelpier.Client(settings=settings) as client:
        jobs = [client.submit("iris", ROWS, binary=i % 2 == 1) for i in range(4)]
        assert all(job.status() in ("queued", "running", "succeeded") for job in jobs)
        answers = [job.result(timeout=60) for job in jobs]
        assert all(list(a["predict"]) == expected for a in answers)
        assert jobs[0].wait().state.status == "succeeded"
        bad = client.submit("iris", [[1.0, 2.0]])
        with pytest.raises(InvalidInput, match="input-0"):
            bad.result(timeout=60)  # the model's 400, stored by the job, raised as it would be live


def test_a_replica_killed_mid_run_costs_no_call(settings: Settings, platform: Platform, expected: list[int]) -> None:
    failures: list[BaseException] = []
    done = threading.Event()
    count = [0]
    with modelpier.Client(settings=settings, timeout=30) as client:
        def load() -> None:
            while not done.is_set() and count[0] < 5000:
                try:
                    assert list(client.predict("iris", ROWS)["predict"]) == expected
                except BaseException as exc:  # collected for the assertion below
                    failures.append(exc)
                count[0] += 1
        worker = threading.Thread(target=load)
        worker.start()
        wait_until(lambda: count[0] >= 50, what="load")
        victim = next(iter(platform.replica_pids("iris").values()))
        os.killpg(victim, signal.SIGKILL)
        seen = count[0]
        wait_until(lambda: count[0] >= seen + 200, what="load after the kill")
        done.set()
        worker.join(30)
    assert not failures, failures[:3]
    platform.wait_ready("iris", 2)


def test_a_request_inside_a_killed_replica_is_not_sent_again(settings: Settings, platform: Platform,
                                                              calls_log: Path) -> None:
    outcome: list[BaseException] = []
    # Generous retries: were the client to retry this request, it would reach the restarted replica.
    with modelpier.Client(settings=settings, retries=30, timeout=90) as client:
        def call() -> None:
            try:
                client.predict("counting", {"x": np.array([[200.0]])})
            except BaseException as exc:  # the outcome under test
                outcome.append(exc)
        worker = threading.Thread(target=call)
        worker.start()
        wait_until(lambda: executions(calls_log) == [200], what="the request inside the model")
        (victim,) = platform.replica_pids("counting").values()
        os.killpg(victim, signal.SIGKILL)
        worker.join(60)
        assert not worker.is_alive()
        platform.wait_ready("counting", 1, timeout=120)  # the backend restarted the replica
        assert client.predict("counting", {"x": np.array([[3.0]])})["y"].tolist() == [[6.0]]
    (calls_log.parent / "gate-0").touch()
    assert len(outcome) == 1
    assert isinstance(outcome[0], PierError)
    assert not isinstance(outcome[0], ServiceUnavailable) or "retry" not in str(outcome[0]).lower()
    assert executions(calls_log) == [200, 3]  # 200 ran once; only the next call ran after the restart


def test_the_gateway_examples_of_the_docs_run(platform: Platform, env: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # What a user's environment holds after `pier up` and `pier login`.
    monkeypatch.setenv("PIER_HOME", str(platform.home))
    monkeypatch.setenv("PIER_CLIENT__URL", platform.gateway)
    monkeypatch.setenv("PIER_CLIENT__GRPC_URL", f"127.0.0.1:{env['PIER_GATEWAY__GRPC_PORT']}")
    monkeypatch.setenv("PIER_TOKEN", ADMIN_TOKEN)
    namespace: dict[str, Any] = {}
    out = io.StringIO()
    blocks = doc_blocks("gateway")
    assert len(blocks) >= 2
    for block in blocks:
        with contextlib.redirect_stdout(out):
            exec(compile(block, "docs/client.md", "exec"), namespace)  # noqa: S102  # the doc's own examples
    assert "iris:1 main" in out.getvalue()
    assert "[0 2]" in out.getvalue()
