"""``Call``: one request to the control plane's ``/api/v1`` and how its answer is read, as data.

Every endpoint is written once, as a function that returns a ``Call`` (``models.py``, ``blobs.py``,
``access.py``, ``gateway.py``, and ``control/api/calls.py`` for the bodies that live in
``control/``); the sync ``ControlClient`` and the async ``AsyncControlClient`` only send them. So
the two clients never repeat per-endpoint code, and building a request is a pure function a unit
test can read without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Params = Mapping[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """``method path`` (under ``/api/v1``, segments already quoted) and ``decode`` for its answer.

    ``accept``: statuses of 400 and more handed to ``decode`` instead of raised (``HEAD`` of a blob
    that is not there is an answer, not an error). ``timeout_s``: this call's read timeout when it
    differs from the client's (a long poll is held by the server on purpose).
    """

    method: str
    path: str
    decode: Callable[[httpx.Response], T]
    params: Params | None = None
    json: Any = None
    content: bytes | Iterable[bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    accept: frozenset[int] = frozenset()
    timeout_s: float | None = None


def seg(value: str | int) -> str:
    """One path segment, quoted: a name can never reach another route (``a?b``, ``a/b``, ``..``)."""
    text = str(value)
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


# -- decoders ------------------------------------------------------------------------------------
def one(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def many(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    return lambda response: [model.model_validate(item) for item in response.json()]


def nothing(_response: httpx.Response) -> None:
    return None


def get(path: str, decode: Callable[[httpx.Response], T], params: Params | None = None) -> Call[T]:
    return Call("GET", path, decode, params=params or None)


def put(path: str, body: Any, decode: Callable[[httpx.Response], T]) -> Call[T]:
    return Call("PUT", path, decode, json=body)


def post(path: str, body: Any, decode: Callable[[httpx.Response], T]) -> Call[T]:
    return Call("POST", path, decode, json=body)


def delete(path: str) -> Call[None]:
    return Call("DELETE", path, nothing)


def send_model(method: str, path: str, body: BaseModel, decode: Callable[[httpx.Response], T], *,
               exclude: set[str] | None = None, by_alias: bool = False) -> Call[T]:
    """A pydantic body serialized by pydantic itself (dates, enums, the model's own aliases)."""
    return Call(method, path, decode, content=body.model_dump_json(exclude=exclude, by_alias=by_alias).encode(),
                headers={"Content-Type": "application/json"})
