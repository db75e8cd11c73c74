"""The bench's HTTP/1.1 request bytes, built once per run."""

from __future__ import annotations

import pytest

from modelpier.bench.client import Endpoint
from modelpier.errors import InvalidInput


def test_request_bytes() -> None:
    e = Endpoint.of("http://127.0.0.1:8700/default/iris/v2/models/iris/infer?x=1", "POST",
                    (("Content-Type", "application/json"), ("Host", "spoofed"), ("Content-Length", "9")), b'{"a":1}')
    assert (e.host, e.port, e.tls) == ("127.0.0.1", 8700, False)
    assert e.payload == (b"POST /default/iris/v2/models/iris/infer?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8700\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")


def test_defaults_ports_and_paths() -> None:
    tls = Endpoint.of("https://gw.example.com", "GET", (), None)
    assert (tls.host, tls.port, tls.tls) == ("gw.example.com", 443, True)
    assert tls.payload == b"GET / HTTP/1.1\r\nHost: gw.example.com\r\n\r\n"
    assert Endpoint.of("http://user:pw@h/x", "GET", (), None).payload.startswith(b"GET /x HTTP/1.1\r\nHost: h\r\n")
    assert Endpoint.of("http://h/x", "POST", (), None).payload.endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///x", "nothing"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(InvalidInput, match="not an http:// or https:// URL"):
        Endpoint.of(url, "GET", (), None)
