"""``modelpier.Client`` and ``AsyncClient`` against real ``pier serve`` processes: every protocol and
input type, errors with the server's words, deadlines the server enforces, and retries that never
run a prediction twice."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

import modelpier
from modelpier.errors import DeadlineExceeded, InvalidInput, NotFound, RemoteError, RemoteUnreachable
from tests.integration.server.conftest import Served, serve_command, start_server
from tests.support.procs import free_port, pier_env, wait_until

from .client_support import executions, iris_rows, save_tabular, write_counting_model

TRANSPORTS = ["json", "binary", "grpc", "kserve-v1", "seldon"]
INPUTS = ["numpy", "list", "dict", "dataframe"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("client-home")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), home / "iris.joblib")
    save_tabular(home)
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Served]:
    with start_server([f"iris={home / 'iris.joblib'}", "tabular"], home) as served:
        yield served


@pytest.fixture(scope="module")
def expected(home: Path) -> np.ndarray:
    return np.asarray(joblib.load(home / "iris.joblib").predict(iris_rows()))


def _client(server: Served, **options: Any) -> modelpier.Client:
    return modelpier.Client(server.url, grpc_url=server.grpc, **options)


def _data(kind: str) -> Any:
    rows = iris_rows()
    return {"numpy": rows, "list": rows.tolist(), "dict": {"input-0": rows},
            "dataframe": pd.DataFrame(rows, columns=["sl", "sw", "pl", "pw"])}[kind]


def _call(transport: str) -> dict[str, Any]:
    if transport in ("json", "binary"):
        return {"binary": transport == "binary"}
    if transport == "grpc":
        return {"grpc": True}
    return {"protocol": transport}


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_protocol_and_input_type(server: Served, expected: np.ndarray, transport: str, kind: str) -> None:
    with _client(server) as client:
        answer = client.predict("iris", _data(kind), **_call(transport))
    if kind == "dataframe":
        assert isinstance(answer, pd.DataFrame)
        assert answer["predict"].tolist() == expected.tolist()
        assert answer.attrs["request_id"]
        return
    assert answer["predict"].tolist() == expected.tolist()
    assert answer.model_name == "iris"
    if transport in ("json", "binary", "grpc"):  # V2 answers every output, named by the model
        assert answer["predict_proba"].shape == (len(expected), 3)
        assert np.allclose(answer["predict_proba"].sum(axis=1), 1.0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_async_client(server: Served, expected: np.ndarray, transport: str) -> None:
    async def main() -> list[Any]:
        async with modelpier.AsyncClient(server.url, grpc_url=server.grpc) as client:
            calls = [client.predict("iris", _data(kind), **_call(transport)) for kind in INPUTS for _ in range(4)]
            return list(await asyncio.gather(*calls))

    for answer in asyncio.run(main()):
        assert answer["predict"].tolist() == expected.tolist()


def test_one_client_from_many_threads(server: Served, expected: np.ndarray) -> None:
    failures: list[BaseException] = []
    with _client(server) as client:
        def work() -> None:
            try:
                for i in range(20):
                    assert client.predict("iris", iris_rows(), grpc=i % 2 == 1)["predict"].tolist() \
                        == expected.tolist()
            except BaseException as exc:  # collected for the assertion below
                failures.append(exc)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not failures


@pytest.mark.parametrize("grpc", [False, True])
def test_a_dataframe_goes_one_input_per_column(server: Served, grpc: bool) -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Rome"], "age": [30, 40, 50]}, index=["a", "b", "c"])
    with _client(server) as client:
        info = client.metadata("tabular")
        answer = client.predict("tabular", frame, grpc=grpc)
    assert [i.name for i in info.inputs] == ["age", "city"]
    assert list(answer.index) == ["a", "b", "c"]
    assert answer["score"].tolist() == [34.0, 44.0, 54.0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_input_reaches_the_caller_with_the_servers_message(server: Served, transport: str) -> None:
    with _client(server) as client, pytest.raises(InvalidInput) as caught:
        client.predict("iris", [[1.0, 2.0, 3.0]], **_call(transport))
    assert "input-0" in caught.value.message  # the server's words name the input
    assert caught.value.details["request_id"] in caught.value.message


def test_unknown_model_is_not_found(server: Served) -> None:
    with _client(server) as client, pytest.raises(NotFound, match="not served here"):
        client.predict("nope", iris_rows())


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    log = tmp_path / "calls.log"
    folder = write_counting_model(tmp_path / "counting", log)
    with start_server([f"counting={folder}"], tmp_path / "home", "--no-batching", "--inline-predict-us", "0",
                      "--model-option", "counting:max_queue=1") as served:
        yield served, log


def _x(value: float) -> dict[str, Any]:
    return {"x": np.array([[value]])}


@pytest.mark.parametrize("grpc", [False, True])
def test_the_deadline_is_enforced_by_the_server(counting: tuple[Served, Path], grpc: bool) -> None:
    served, log = counting
    with _client(served) as client:
        try:
            with pytest.raises(DeadlineExceeded) as caught:
                client.predict("counting", _x(200), timeout=0.5, grpc=grpc)
        finally:
            (log.parent / "gate-0").touch()
    # The server's own message: it stopped waiting at the caller's deadline, not at its 30 s.
    assert re.search(r"did not answer within 0\.[0-5]\d*s", caught.value.message), caught.value.message
    assert served.metric("modelpier_requests_total", model="counting",
                         protocol="v2-grpc" if grpc else "v2-rest", status="deadline_exceeded") == 1


def test_a_request_that_reached_the_model_is_never_retried(counting: tuple[Served, Path]) -> None:
    served, log = counting
    outcome: list[BaseException] = []
    with _client(served, retries=20, timeout=60) as client:
        def call() -> None:
            try:
                client.predict("counting", _x(200))
            except BaseException as exc:  # the outcome under test
                outcome.append(exc)
        worker = threading.Thread(target=call)
        worker.start()
        wait_until(lambda: executions(log) == [200], what="the model to start on the request")
        os.kill(served.proc.pid, signal.SIGKILL)  # the server dies with the request inside the model
        worker.join(30)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert type(outcome[0]) is RemoteError
    assert "not retried" in str(outcome[0])
    assert executions(log) == [200]


def test_a_connection_refused_is_retried_until_the_server_listens(home: Path, expected: np.ndarray) -> None:
    http, grpc = free_port(), free_port()
    (home / "late").mkdir(exist_ok=True)
    with (home / "late" / "serve.log").open("wb") as out:
        import subprocess

        proc = subprocess.Popen([*serve_command(), f"iris={home / 'iris.joblib'}", "--http-port", str(http),
                                 "--grpc-port", str(grpc)], env=pier_env(home / "late"), stdout=out,
                                stderr=subprocess.STDOUT)
    late = Served(url=f"http://127.0.0.1:{http}", grpc=f"127.0.0.1:{grpc}", proc=proc, log=home / "late/serve.log")
    try:
        with modelpier.Client(late.url, retries=40, timeout=60) as client:
            answer = client.predict("iris", iris_rows())  # sent while the server is still starting
        assert answer["predict"].tolist() == expected.tolist()
        assert late.metric("modelpier_requests_total", model="iris", protocol="v2-rest", status="ok") == 1
    finally:
        late.stop()


def test_a_full_queue_503_is_retried_after_its_retry_after(counting: tuple[Served, Path]) -> None:
    served, log = counting
    blocked: list[Any] = []
    with _client(served, timeout=60) as client:
        first = threading.Thread(target=lambda: blocked.append(client.predict("counting", _x(200))))
        first.start()
        wait_until(lambda: executions(log) == [200], what="the first request inside the model")
        second: list[Any] = []
        worker = threading.Thread(target=lambda: second.append(client.predict("counting", _x(7))))
        worker.start()
        wait_until(lambda: served.metric("modelpier_requests_total", model="counting", protocol="v2-rest",
                                         status="overloaded") >= 1, what="the second request refused")
        (log.parent / "gate-0").touch()
        first.join(30)
        worker.join(30)
    assert second
    assert second[0]["y"].tolist() == [[14.0]]
    assert sorted(executions(log)) == [7, 200]  # refused, then run once


def test_unreachable_is_a_remote_unreachable(tmp_path: Path) -> None:
    with modelpier.Client(f"http://127.0.0.1:{free_port()}", retries=1, timeout=5) as client, \
            pytest.raises(RemoteUnreachable, match="cannot connect"):
        client.predict("iris", iris_rows())
