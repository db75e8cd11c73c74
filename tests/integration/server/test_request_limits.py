"""The limits that bound a single request, against a real ``pier serve`` process over loopback.

Small adversarial requests (a few hundred bytes that declare huge tensors) must be answered 4xx,
never 5xx, without the process's peak memory growing by more than a small multiple of what was sent.
The head of a request is bounded in header count and time, its body in time, and transfer codings the
server does not decode are refused.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

from .conftest import Served, start_server

HUGE = 4611686018427387904
ROWS = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def server(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("pier-home")
    with start_server([f"iris={iris_model}"], home, "--head-timeout-s", "1", "--body-timeout-s", "2") as served:
        yield served


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM) in bytes; ``psutil`` reports only the current one."""
    psutil.Process(pid)  # raises if the process is gone, rather than reading another's file
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def binary(shape: list[int], datatype: str = "BYTES") -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": 0}}]}).encode()
    return header, {"inference-header-content-length": str(len(header))}


def v2_json(shape: list[int], datatype: str = "FP64") -> bytes:
    return json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": []}]}).encode()


def grpc_infer(server: Served, shape: list[int], datatype: str = "BYTES") -> grpc.StatusCode:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype=datatype, shape=shape)
    request.raw_input_contents.append(b"")
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(request.SerializeToString(), timeout=30)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_small_requests_declaring_huge_tensors_are_4xx_and_cost_no_memory(server: Served) -> None:
    infer = f"{server.url}/v2/models/iris/infer"
    with httpx.Client(timeout=60) as client:
        # Warm up every path first, so what is measured is the adversarial requests alone.
        assert client.post(infer, json={"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                                    "data": ROWS}]}).status_code == 200
        assert client.post(f"{server.url}/v1/models/iris:predict", json={"instances": ROWS}).status_code == 200
        assert client.post(f"{server.url}/api/v1.0/predictions",
                           json={"data": {"ndarray": ROWS}}).status_code == 200
        before = peak_rss(server.proc.pid)
        sent = 0
        statuses = []
        for shape in ([100_000_000], [10**12], [0, HUGE, 4], [50_000_000, 2], [HUGE]):
            for datatype in ("BYTES", "FP64"):
                body, headers = binary(shape, datatype)
                statuses.append(client.post(infer, content=body, headers=headers).status_code)
                json_body = v2_json(shape, datatype)
                statuses.append(client.post(infer, content=json_body).status_code)
                seldon = json.dumps({"data": {"tensor": {"shape": shape, "values": []}}}).encode()
                statuses.append(client.post(f"{server.url}/api/v1.0/predictions", content=seldon).status_code)
                sent += len(body) + len(json_body) + len(seldon)
        grpc_codes = [grpc_infer(server, shape) for shape in ([100_000_000], [10**12], [0, HUGE, 4])]
        after = peak_rss(server.proc.pid)
    assert all(400 <= s < 500 for s in statuses), statuses
    assert set(grpc_codes) <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}, grpc_codes
    # Before the limits, [100000000] BYTES alone took the peak from ~200 MB to ~1 GB. Decoding a few
    # kilobytes costs the interpreter some small allocations: allow 64x what was sent, at least 4 MiB.
    assert after - before <= max(64 * sent, 4 * 1024 * 1024), (before, after, sent)
    assert server.metric("modelpier_requests_total", model="iris", protocol="v2-rest", status="internal") == 0
    assert server.metric("modelpier_requests_total", model="iris", protocol="seldon", status="internal") == 0


def test_an_element_limit_names_the_setting(server: Served) -> None:
    response = httpx.post(f"{server.url}/v2/models/iris/infer", content=v2_json([20_000_000, 4]))
    assert response.status_code == 413
    assert "PIER_LIMITS__MAX_REQUEST_ELEMENTS" in response.json()["error"]


def _raw(server: Served, data: bytes, *, pause_after: int | None = None, wait_s: float = 0.0) -> bytes:
    """Send ``data`` on a fresh connection (pausing ``wait_s`` after ``pause_after`` bytes) and read until closed."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        if pause_after is None:
            sock.sendall(data)
        else:
            sock.sendall(data[:pause_after])
            time.sleep(wait_s)  # the client is slow on purpose: the server's deadline is what is tested
            with contextlib.suppress(OSError):  # the server closed first, as it should
                sock.sendall(data[pause_after:])
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_ten_thousand_headers_are_refused_with_431(server: Served) -> None:
    headers = b"".join(b"x-h%d: v\r\n" % i for i in range(10_000))
    answer = _raw(server, b"GET /v2/health/live HTTP/1.1\r\nhost: s\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"more than 100 headers" in answer
    ok = httpx.get(f"{server.url}/v2/health/live", headers={f"x-h{i}": "v" for i in range(50)})
    assert ok.status_code == 200


def test_a_head_trickled_past_its_deadline_is_408(server: Served) -> None:
    started = time.monotonic()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: s\r\n")
        answer = b""
        for i in range(40):  # one header line every 0.1 s, each keeping the connection busy
            try:
                sock.sendall(b"x-slow-%d: v\r\n" % i)
            except OSError:
                break
            time.sleep(0.1)  # the slow client under test
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"headers did not arrive within 1s" in answer
    assert time.monotonic() - started < 5


def test_a_body_trickled_past_its_deadline_is_408(server: Served) -> None:
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROWS}]}).encode()
    head = b"POST /v2/models/iris/infer HTTP/1.1\r\nhost: s\r\ncontent-length: %d\r\n\r\n" % len(body)
    answer = _raw(server, head + body, pause_after=len(head) + 5, wait_s=3.0)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"body did not arrive within 2s" in answer


def test_transfer_codings_other_than_chunked_are_refused(server: Served) -> None:
    body = b'{"inputs": []}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for coding in (b"gzip, chunked", b"deflate,chunked"):
        answer = _raw(server, b"POST /v2/models/iris/infer HTTP/1.1\r\nhost: s\r\ntransfer-encoding: " + coding
                      + b"\r\n\r\n" + chunked)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b"is not supported" in answer
    plain = _raw(server, b"POST /v2/models/iris/infer HTTP/1.1\r\nhost: s\r\nconnection: close\r\n"
                         b"transfer-encoding: chunked\r\n\r\n" + chunked)
    assert plain.startswith(b"HTTP/1.1 400 "), plain[:200]  # the model's own answer to empty inputs
    assert b"non-empty 'inputs'" in plain
